package firmware

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
)

// Chunk sizes a manifest may have. The lower bound keeps the number of
// requests (and the manifest's length) of a large artifact sane; the
// upper bound is what a small device may hold in memory at once. A chunk
// is one NATS message too, so the hub's max_payload (1 MiB by default)
// bounds it further; the publisher checks that.
const (
	MinChunkSize = 4 << 10
	MaxChunkSize = 8 << 20
)

// Errors of this package, wrapped with what failed where.
var (
	// ErrInvalidManifest: a manifest breaks a rule of Validate.
	ErrInvalidManifest = errors.New("invalid manifest")
	// ErrChecksum: bytes do not match what the manifest says of them.
	ErrChecksum = errors.New("checksum mismatch")
)

// maxIDLen bounds a name or version: both end up in object names, file
// names and log lines.
const maxIDLen = 64

// ObjectName is the artifact's object name in the tenant's bucket; its
// manifest is ObjectName(...) + ManifestSuffix.
func ObjectName(name, version, platform string) string {
	return name + "/" + version + "/" + platform
}

// CheckName reports whether s may be a firmware name or version: 1 to 64
// of A-Z, a-z, 0-9, '.', '_', '+' and '-', starting with a letter or a
// digit. The first-character rule keeps "." and ".." out, since the leaf
// agent may use both in file paths. what names the field in the error.
func CheckName(what, s string) error {
	if len(s) < 1 || len(s) > maxIDLen {
		return fmt.Errorf("%s %q: want 1 to %d characters", what, clip(s), maxIDLen)
	}
	if !isAlnum(s[0]) {
		return fmt.Errorf("%s %q: must start with a letter or a digit", what, clip(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '+' && c != '-' {
			return fmt.Errorf("%s %q: character %q not allowed: want A-Z, a-z, 0-9, '.', '_', '+' and '-'", what, clip(s), c)
		}
	}
	return nil
}

// CheckPlatform reports whether s is "any" or "<os>/<arch>" in lowercase
// letters and digits, as GOOS/GOARCH, e.g. "linux/arm64".
func CheckPlatform(s string) error {
	if s == "any" {
		return nil
	}
	goos, goarch, ok := strings.Cut(s, "/")
	if !ok || !isLowerWord(goos) || !isLowerWord(goarch) {
		return fmt.Errorf("platform %q: want \"any\" or <os>/<arch> in lowercase, e.g. \"linux/arm64\"", clip(s))
	}
	return nil
}

// CheckChunkSize reports whether n is a chunk size a manifest may have.
func CheckChunkSize(n int) error {
	if n < MinChunkSize || n > MaxChunkSize {
		return fmt.Errorf("chunk size %d: want %d (4 KiB) to %d (8 MiB)", n, MinChunkSize, MaxChunkSize)
	}
	return nil
}

// Validate reports every rule the manifest breaks, each error naming its
// field and wrapping ErrInvalidManifest. A manifest from Build has no
// Object yet: the hub fills it (and Seqs) when it publishes.
func (m Manifest) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidManifest, err))
		}
	}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidManifest}, args...)...))
	}
	add(CheckName("name", m.Name))
	add(CheckName("version", m.Version))
	add(CheckPlatform(m.Platform))
	if m.Size < 0 {
		bad("size %d is negative", m.Size)
	}
	chunkSizeErr := CheckChunkSize(m.ChunkSize)
	add(chunkSizeErr)
	if chunkSizeErr == nil && m.Size >= 0 {
		if want := chunkCount(m.Size, m.ChunkSize); int64(len(m.Chunks)) != want {
			bad("chunks: %d digests for %d bytes in chunks of %d: want %d", len(m.Chunks), m.Size, m.ChunkSize, want)
		}
	}
	for i, c := range m.Chunks {
		if !isDigest(c) {
			bad("chunks[%d] %q: want 64 lowercase hex digits (SHA-256)", i, clip(c))
			break // one is enough: the rest are likely alike
		}
	}
	if !isDigest(m.SHA256) {
		bad("sha256 %q: want 64 lowercase hex digits", clip(m.SHA256))
	}
	if len(m.Seqs) != 0 && len(m.Seqs) != len(m.Chunks) {
		bad("seqs: %d sequences for %d chunks: want none or one per chunk", len(m.Seqs), len(m.Chunks))
	}
	// Chunks are published in order, so their sequences rise; a device
	// asks for each by sequence, and 0 is no sequence.
	for i, s := range m.Seqs {
		if s == 0 || (i > 0 && s <= m.Seqs[i-1]) {
			bad("seqs[%d] = %d: want stream sequences from 1, rising", i, s)
			break
		}
	}
	if m.Object == "" {
		bad("object: empty: want the artifact's object name")
	}
	return errors.Join(errs...)
}

// chunkCount is ceil(size/chunkSize) without overflow; chunkSize > 0.
func chunkCount(size int64, chunkSize int) int64 {
	n := size / int64(chunkSize)
	if size%int64(chunkSize) != 0 {
		n++
	}
	return n
}

// ChunkOffset is where chunk i starts in the artifact.
func (m Manifest) ChunkOffset(i int) int64 { return int64(i) * int64(m.ChunkSize) }

// ChunkLen is the length of chunk i: ChunkSize but for the last chunk,
// and 0 for an i out of range.
func (m Manifest) ChunkLen(i int) int64 {
	if i < 0 || i >= len(m.Chunks) || m.ChunkSize <= 0 {
		return 0
	}
	return min(int64(m.ChunkSize), m.Size-m.ChunkOffset(i))
}

// CheckChunk checks chunk i's length and digest; a mismatch wraps
// ErrChecksum and says which chunk and what was expected.
func (m Manifest) CheckChunk(i int, data []byte) error {
	if i < 0 || i >= len(m.Chunks) {
		return fmt.Errorf("chunk %d: out of range: the manifest has %d chunks", i, len(m.Chunks))
	}
	if want := m.ChunkLen(i); int64(len(data)) != want {
		return fmt.Errorf("chunk %d of %d: %w: %d bytes, want %d", i, len(m.Chunks), ErrChecksum, len(data), want)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != m.Chunks[i] {
		return fmt.Errorf("chunk %d of %d: %w: sha256 %s…, want %s…", i, len(m.Chunks), ErrChecksum, got[:12], prefix(m.Chunks[i], 12))
	}
	return nil
}

// Check reads a whole artifact and checks its size and digest against
// the manifest: the last check before an artifact is applied. It reads at
// most Size+1 bytes; a mismatch wraps ErrChecksum.
func (m Manifest) Check(whole io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(whole, m.Size+1))
	if err != nil {
		return fmt.Errorf("check artifact: %w", err)
	}
	if n != m.Size {
		more := ""
		if n > m.Size {
			more = " or more"
		}
		return fmt.Errorf("check artifact: %w: %d bytes%s, want %d", ErrChecksum, n, more, m.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
		return fmt.Errorf("check artifact: %w: sha256 %s…, want %s…", ErrChecksum, got[:12], prefix(m.SHA256, 12))
	}
	return nil
}

// Build reads an artifact once and returns its manifest's Size, SHA256,
// ChunkSize and Chunks; the caller fills in the rest.
func Build(r io.Reader, chunkSize int) (Manifest, error) {
	c, err := NewChunker(chunkSize)
	if err != nil {
		return Manifest{}, err
	}
	if _, err := io.Copy(c, r); err != nil {
		return Manifest{}, fmt.Errorf("build manifest: read artifact: %w", err)
	}
	return c.Manifest(), nil
}

// Chunker computes a manifest from an artifact written to it in pieces
// of any size, e.g. through an io.TeeReader while the artifact is
// uploaded. It holds digests, never the data.
type Chunker struct {
	chunkSize int
	whole     hash.Hash
	chunk     hash.Hash
	inChunk   int // bytes of the current chunk written so far
	size      int64
	chunks    []string
}

// NewChunker starts a manifest with the given chunk size.
func NewChunker(chunkSize int) (*Chunker, error) {
	if err := CheckChunkSize(chunkSize); err != nil {
		return nil, err
	}
	return &Chunker{chunkSize: chunkSize, whole: sha256.New(), chunk: sha256.New()}, nil
}

// Write adds the next bytes of the artifact; it never fails.
func (c *Chunker) Write(p []byte) (int, error) {
	n := len(p)
	c.whole.Write(p)
	c.size += int64(n)
	for len(p) > 0 {
		take := min(len(p), c.chunkSize-c.inChunk)
		c.chunk.Write(p[:take])
		c.inChunk += take
		p = p[take:]
		if c.inChunk == c.chunkSize {
			c.endChunk()
		}
	}
	return n, nil
}

func (c *Chunker) endChunk() {
	c.chunks = append(c.chunks, hex.EncodeToString(c.chunk.Sum(nil)))
	c.chunk.Reset()
	c.inChunk = 0
}

// Manifest is the manifest of what was written so far, a partial last
// chunk included. Writing more afterwards is allowed: the next call
// covers it too.
func (c *Chunker) Manifest() Manifest {
	chunks := append([]string(nil), c.chunks...)
	if c.inChunk > 0 {
		sum := c.chunk.Sum(nil) // Sum does not change the running hash
		chunks = append(chunks, hex.EncodeToString(sum))
	}
	if chunks == nil {
		chunks = []string{} // "chunks": [] rather than null
	}
	return Manifest{
		Size:      c.size,
		SHA256:    hex.EncodeToString(c.whole.Sum(nil)),
		ChunkSize: c.chunkSize,
		Chunks:    chunks,
	}
}

// CompareVersions orders versions semantic-ish: it compares the
// '.'-separated parts one by one, numerically when both are numbers, else
// as strings; when all shared parts are equal, fewer parts come first.
// So 1.9 < 1.10 < 1.10.0 and 1.4.0-rc1 < 1.4.0-rc2.
func CompareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, xerr := strconv.ParseUint(as[i], 10, 64)
		y, yerr := strconv.ParseUint(bs[i], 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
		case as[i] != bs[i]:
			return strings.Compare(as[i], bs[i])
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	// Equal parts but different text, e.g. "01" and "1": still a total
	// order, for stable sorting.
	return strings.Compare(a, b)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isLowerWord(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isDigest reports whether s is a hex SHA-256 digest as this package
// writes them (lowercase), so that digests compare as strings.
func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// clip shortens outside text for an error message.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
