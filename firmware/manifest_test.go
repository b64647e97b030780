package firmware_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/canopy-iot/canopy/firmware"
)

const chunk = firmware.MinChunkSize

// artifact is n reproducible pseudo-random bytes.
func artifact(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// published completes a built manifest as the hub does.
func published(t testing.TB, data []byte) firmware.Manifest {
	t.Helper()
	m, err := firmware.Build(bytes.NewReader(data), chunk)
	if err != nil {
		t.Fatal(err)
	}
	m.Name, m.Version, m.Platform = "sensor-fw", "1.4.0", "linux/arm64"
	m.Object = firmware.ObjectName(m.Name, m.Version, m.Platform)
	for i := range m.Chunks {
		m.Seqs = append(m.Seqs, uint64(10+2*i))
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("published manifest does not validate: %v", err)
	}
	return m
}

func TestBuild(t *testing.T) {
	for _, tt := range []struct {
		name   string
		size   int
		chunks int
	}{
		{"empty", 0, 0},
		{"one byte", 1, 1},
		{"chunk-1", chunk - 1, 1},
		{"chunk", chunk, 1},
		{"chunk+1", chunk + 1, 2},
		{"3.5 chunks", 3*chunk + chunk/2, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := artifact(tt.size)
			// A reader returning one byte at a time proves that chunk
			// boundaries do not depend on read sizes.
			for _, r := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data))} {
				m, err := firmware.Build(r, chunk)
				if err != nil {
					t.Fatal(err)
				}
				if m.Size != int64(tt.size) || m.ChunkSize != chunk || m.SHA256 != digest(data) || len(m.Chunks) != tt.chunks {
					t.Fatalf("manifest size %d, chunk size %d, sha256 %s, %d chunks; want %d, %d, %s, %d",
						m.Size, m.ChunkSize, m.SHA256, len(m.Chunks), tt.size, chunk, digest(data), tt.chunks)
				}
				total := int64(0)
				for i, c := range m.Chunks {
					off, n := m.ChunkOffset(i), m.ChunkLen(i)
					if c != digest(data[off:off+n]) {
						t.Errorf("chunk %d digest %s, want that of bytes %d-%d", i, c, off, off+n)
					}
					if err := m.CheckChunk(i, data[off:off+n]); err != nil {
						t.Errorf("CheckChunk(%d): %v", i, err)
					}
					total += n
				}
				if total != m.Size {
					t.Errorf("chunk lengths add up to %d, want %d", total, m.Size)
				}
				if err := m.Check(bytes.NewReader(data)); err != nil {
					t.Errorf("Check: %v", err)
				}
			}
		})
	}
}

func TestBuildRefusesChunkSize(t *testing.T) {
	for _, n := range []int{0, -1, firmware.MinChunkSize - 1, firmware.MaxChunkSize + 1} {
		if _, err := firmware.Build(strings.NewReader("x"), n); err == nil || !strings.Contains(err.Error(), "chunk size") {
			t.Errorf("Build with chunk size %d: %v, want a chunk size error", n, err)
		}
	}
}

func TestBuildReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := firmware.Build(io.MultiReader(bytes.NewReader(artifact(chunk+5)), iotest.ErrReader(boom)), chunk)
	if !errors.Is(err, boom) {
		t.Fatalf("Build: %v, want the read error", err)
	}
}

func TestChunker(t *testing.T) {
	data := artifact(2*chunk + 100)
	c, err := firmware.NewChunker(chunk)
	if err != nil {
		t.Fatal(err)
	}
	// Writes straddling chunk boundaries, and a look in between.
	c.Write(data[:chunk-1])
	if m := c.Manifest(); m.Size != chunk-1 || len(m.Chunks) != 1 || m.Chunks[0] != digest(data[:chunk-1]) {
		t.Fatalf("partial manifest %+v", m)
	}
	c.Write(data[chunk-1 : chunk+7])
	c.Write(data[chunk+7:])
	want, _ := firmware.Build(bytes.NewReader(data), chunk)
	if got := c.Manifest(); !slices.Equal(got.Chunks, want.Chunks) || got.SHA256 != want.SHA256 || got.Size != want.Size {
		t.Fatalf("chunker manifest %+v, want %+v", got, want)
	}
}

func TestCheckChunkDetectsCorruption(t *testing.T) {
	data := artifact(3*chunk + 10)
	m := published(t, data)
	for i := range m.Chunks {
		part := bytes.Clone(data[m.ChunkOffset(i) : m.ChunkOffset(i)+m.ChunkLen(i)])
		part[len(part)/2] ^= 0x01
		err := m.CheckChunk(i, part)
		if !errors.Is(err, firmware.ErrChecksum) {
			t.Fatalf("chunk %d with a flipped bit: %v, want ErrChecksum", i, err)
		}
		if want := fmt.Sprintf("chunk %d of 4", i); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), m.Chunks[i][:12]) {
			t.Errorf("error %q: want it to name %q and the expected digest's prefix", err, want)
		}
		if err := m.CheckChunk(i, part[:len(part)-1]); !errors.Is(err, firmware.ErrChecksum) || !strings.Contains(err.Error(), "bytes") {
			t.Errorf("chunk %d one byte short: %v, want a length mismatch", i, err)
		}
	}
	if err := m.CheckChunk(4, nil); err == nil {
		t.Error("chunk out of range accepted")
	}
	corrupt := bytes.Clone(data)
	corrupt[len(corrupt)-1] ^= 0x80
	for name, r := range map[string]io.Reader{
		"flipped": bytes.NewReader(corrupt),
		"short":   bytes.NewReader(data[:len(data)-1]),
		"long":    io.MultiReader(bytes.NewReader(data), strings.NewReader("!")),
	} {
		if err := m.Check(r); !errors.Is(err, firmware.ErrChecksum) {
			t.Errorf("Check of a %s artifact: %v, want ErrChecksum", name, err)
		}
	}
}

func TestChunkLen(t *testing.T) {
	m := published(t, artifact(2*chunk+1))
	for i, want := range map[int]int64{-1: 0, 0: chunk, 1: chunk, 2: 1, 3: 0} {
		if got := m.ChunkLen(i); got != want {
			t.Errorf("ChunkLen(%d) = %d, want %d", i, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	good := published(t, artifact(2*chunk+1))
	for _, tt := range []struct {
		name   string
		change func(*firmware.Manifest)
		field  string
	}{
		{"empty name", func(m *firmware.Manifest) { m.Name = "" }, "name"},
		{"long name", func(m *firmware.Manifest) { m.Name = strings.Repeat("a", 65) }, "name"},
		{"slash in name", func(m *firmware.Manifest) { m.Name = "a/b" }, "name"},
		{"dot-dot version", func(m *firmware.Manifest) { m.Version = ".." }, "version"},
		{"space in version", func(m *firmware.Manifest) { m.Version = "1 0" }, "version"},
		{"upper-case platform", func(m *firmware.Manifest) { m.Platform = "Linux/arm64" }, "platform"},
		{"platform without arch", func(m *firmware.Manifest) { m.Platform = "linux" }, "platform"},
		{"platform with three parts", func(m *firmware.Manifest) { m.Platform = "linux/arm/v7" }, "platform"},
		{"negative size", func(m *firmware.Manifest) { m.Size = -1 }, "size"},
		{"small chunks", func(m *firmware.Manifest) { m.ChunkSize = 1024 }, "chunk size"},
		{"large chunks", func(m *firmware.Manifest) { m.ChunkSize = 16 << 20 }, "chunk size"},
		{"missing chunk", func(m *firmware.Manifest) { m.Chunks = m.Chunks[:2]; m.Seqs = m.Seqs[:2] }, "chunks"},
		{"size beyond chunks", func(m *firmware.Manifest) { m.Size += chunk }, "chunks"},
		{"short chunk digest", func(m *firmware.Manifest) { m.Chunks[1] = m.Chunks[1][:63] }, "chunks[1]"},
		{"upper-case chunk digest", func(m *firmware.Manifest) { m.Chunks[0] = strings.ToUpper(m.Chunks[0]) }, "chunks[0]"},
		{"bad sha256", func(m *firmware.Manifest) { m.SHA256 = "xyz" }, "sha256"},
		{"seqs count", func(m *firmware.Manifest) { m.Seqs = m.Seqs[:1] }, "seqs"},
		{"seqs falling", func(m *firmware.Manifest) { m.Seqs[2] = m.Seqs[1] }, "seqs[2]"},
		{"seq zero", func(m *firmware.Manifest) { m.Seqs[0] = 0 }, "seqs[0]"},
		{"no object", func(m *firmware.Manifest) { m.Object = "" }, "object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			m.Chunks, m.Seqs = slices.Clone(good.Chunks), slices.Clone(good.Seqs)
			tt.change(&m)
			err := m.Validate()
			if !errors.Is(err, firmware.ErrInvalidManifest) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate: %v, want an invalid manifest error naming %q", err, tt.field)
			}
		})
	}
	t.Run("all problems at once", func(t *testing.T) {
		err := firmware.Manifest{Name: "", Version: "", Platform: "?", ChunkSize: 1}.Validate()
		for _, field := range []string{"name", "version", "platform", "chunk size", "sha256", "object"} {
			if err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("Validate: %v, want %q among the problems", err, field)
			}
		}
	})
	t.Run("empty artifact without seqs", func(t *testing.T) {
		m, _ := firmware.Build(bytes.NewReader(nil), chunk)
		m.Name, m.Version, m.Platform, m.Object = "x", "1", "any", "x/1/any"
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestObjectName(t *testing.T) {
	if got := firmware.ObjectName("canopy-leaf", "1.4.0", "linux/arm64"); got != "canopy-leaf/1.4.0/linux/arm64" {
		t.Fatalf("ObjectName = %q", got)
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"0.9", "1", "1.0", "1.2", "1.9.9", "1.10", "1.10.0", "1.10.0-rc1", "1.10.0-rc2", "2", "10", "a"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := firmware.CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}
