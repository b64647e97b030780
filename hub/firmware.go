package hub

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
)

// ErrNoFirmware: the tenant's bucket holds no manifest by that name,
// version and platform.
var ErrNoFirmware = errors.New("no such firmware")

// FirmwareStream is the stream behind the "firmware" Object Store:
// devices fetch chunks from it by sequence.
const FirmwareStream = "OBJ_" + firmware.Bucket

// firmwareChunkSubject is the subject of an object's chunk messages
// ($O.<bucket>.C.<nuid>), as nats.go's Object Store writes them.
func firmwareChunkSubject(nuid string) string { return "$O." + firmware.Bucket + ".C." + nuid }

// FirmwareMeta is what the operator says about an artifact when
// publishing it; the artifact itself says the rest.
type FirmwareMeta struct {
	Name     string // e.g. "sensor-fw"
	Version  string // e.g. "1.4.0"
	Platform string // GOOS/GOARCH, e.g. "linux/arm64", or "any"
	Notes    string // free text for the operator, signed with the rest
	// ChunkSize is the size of the artifact's chunks; 0 means
	// firmware.DefaultChunkSize. It must fit the hub's max_payload.
	ChunkSize int
}

// Admin credentials of a firmware command. Nothing is stored; the hub
// disconnects a user whose JWT expires, so an upload must end before.
const (
	firmwarePublishTTL = 4 * time.Hour
	firmwareReadTTL    = 10 * time.Minute
)

// maxPayloadMargin is room for the headers a chunk travels with (a direct
// get's reply names stream, subject, sequence and time) and for the
// Desired document around a signed manifest.
const maxPayloadMargin = 1 << 10

// firmwareStore connects to the hub as the tenant's admin and binds its
// firmware Object Store. The caller closes the connection.
func (a *Admin) firmwareStore(ctx context.Context, tenant string, ttl time.Duration) (*nats.Conn, jetstream.JetStream, jetstream.ObjectStore, error) {
	creds, err := a.keys.AdminCreds(tenant, ttl)
	if err != nil {
		return nil, nil, nil, err
	}
	nc, err := a.connect(creds, "canopy-hub firmware "+tenant)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	obs, err := js.ObjectStore(ctx, firmware.Bucket)
	if err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil, nil, fmt.Errorf("tenant %s: no object store %q on the hub (run canopy-hub tenant sync %s): %w", tenant, firmware.Bucket, tenant, err)
		}
		return nil, nil, nil, fmt.Errorf("tenant %s: object store %q: %w", tenant, firmware.Bucket, err)
	}
	return nc, js, obs, nil
}

// checkFirmwareMeta reports every problem of meta at once, with its
// chunk size defaulted.
func checkFirmwareMeta(meta *FirmwareMeta) error {
	if meta.ChunkSize == 0 {
		meta.ChunkSize = firmware.DefaultChunkSize
	}
	return errors.Join(
		firmware.CheckName("name", meta.Name),
		firmware.CheckName("version", meta.Version),
		firmware.CheckPlatform(meta.Platform),
		firmware.CheckChunkSize(meta.ChunkSize),
	)
}

// PublishFirmware stores an artifact in the tenant's firmware bucket and
// signs its manifest with the tenant's firmware key. It reads artifact
// once, in chunks: the manifest is computed while the chunks go out, and
// then checked against what the hub stored (each chunk is read back once,
// by the sequence devices will ask for). Publishing the same name,
// version and platform again replaces the artifact and its manifest: the
// old manifest's sequences are gone, and devices still fetching it fail
// their next chunk.
func (a *Admin) PublishFirmware(ctx context.Context, tenant string, meta FirmwareMeta, artifact io.Reader) (firmware.Manifest, error) {
	if err := checkFirmwareMeta(&meta); err != nil {
		return firmware.Manifest{}, fmt.Errorf("publish firmware: %w", err)
	}
	object := firmware.ObjectName(meta.Name, meta.Version, meta.Platform)
	fail := func(err error) (firmware.Manifest, error) {
		return firmware.Manifest{}, fmt.Errorf("tenant %s: publish %s: %w", tenant, object, err)
	}
	// The key first: an unknown tenant fails before any upload.
	signer, err := a.keys.FirmwareSigner(tenant)
	if err != nil {
		return firmware.Manifest{}, fmt.Errorf("publish firmware: %w", err) // names the tenant
	}
	defer signer.Wipe()
	nc, js, obs, err := a.firmwareStore(ctx, tenant, firmwarePublishTTL)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	if limit := nc.MaxPayload(); int64(meta.ChunkSize)+maxPayloadMargin > limit {
		return fail(fmt.Errorf("chunk size %d does not fit the hub's max_payload of %d bytes with %d to spare: choose a smaller chunk size", meta.ChunkSize, limit, maxPayloadMargin))
	}

	chunker, err := firmware.NewChunker(meta.ChunkSize)
	if err != nil {
		return fail(err)
	}
	// nats.go makes one chunk message of each Read; full reads make chunk
	// i of the object exactly chunk i of the manifest.
	body := &fullReader{r: io.TeeReader(artifact, chunker)}
	info, err := obs.Put(ctx, jetstream.ObjectMeta{
		Name:        object,
		Description: meta.Notes,
		Opts:        &jetstream.ObjectMetaOptions{ChunkSize: uint32(meta.ChunkSize)},
	}, body)
	if err != nil {
		return fail(fmt.Errorf("upload: %w", err))
	}
	// From here on a failure leaves no half-published firmware: the new
	// artifact goes, and so does the manifest of the one it replaced,
	// whose chunks the upload purged.
	undo := func(err error) (firmware.Manifest, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), adminTimeout)
		defer cancel()
		var errs []error
		for _, name := range []string{object, object + firmware.ManifestSuffix} {
			if derr := obs.Delete(cctx, name); derr != nil && !errors.Is(derr, jetstream.ErrObjectNotFound) {
				errs = append(errs, fmt.Errorf("remove %s: %w", name, derr))
			}
		}
		if len(errs) > 0 {
			err = fmt.Errorf("%w (and cleaning up failed: %w)", err, errors.Join(errs...))
		}
		return fail(err)
	}

	m := chunker.Manifest()
	sum, _ := hex.DecodeString(m.SHA256)
	digest := "SHA-256=" + base64.URLEncoding.EncodeToString(sum)
	if info.Size != uint64(m.Size) || int(info.Chunks) != len(m.Chunks) || info.Digest != digest {
		return undo(fmt.Errorf("the hub stored %d bytes in %d chunks (%s), but %d bytes in %d chunks (%s) were sent",
			info.Size, info.Chunks, info.Digest, m.Size, len(m.Chunks), digest))
	}
	if m.Seqs, err = firmwareChunkSeqs(ctx, js, info.NUID, m); err != nil {
		return undo(err)
	}
	m.Name, m.Version, m.Platform, m.Notes = meta.Name, meta.Version, meta.Platform, meta.Notes
	m.Object = object
	m.Created = time.Now().UTC().Truncate(time.Second)
	signed, err := firmware.Sign(m, signer)
	if err != nil {
		return undo(err)
	}
	// Devices get the signed manifest inside a Desired document, one KV
	// message: it must fit the hub's max_payload.
	if limit := nc.MaxPayload(); int64(len(signed))+maxPayloadMargin > limit {
		return undo(fmt.Errorf("the signed manifest (%d chunks) is %d bytes, too large for the hub's max_payload of %d: use a larger chunk size", len(m.Chunks), len(signed), limit))
	}
	if _, err := obs.PutBytes(ctx, object+firmware.ManifestSuffix, signed); err != nil {
		return undo(fmt.Errorf("store manifest: %w", err))
	}
	return m, nil
}

// firmwareChunkSeqs finds the stream sequence of each of the object's
// chunk messages, in order, and checks each against the manifest: the
// devices' view of the artifact, read back once.
func firmwareChunkSeqs(ctx context.Context, js jetstream.JetStream, nuid string, m firmware.Manifest) ([]uint64, error) {
	stream, err := js.Stream(ctx, FirmwareStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", FirmwareStream, err)
	}
	subject := firmwareChunkSubject(nuid)
	seqs := make([]uint64, 0, len(m.Chunks))
	next := uint64(1)
	for i := 0; ; i++ {
		// The first message on subject at or after next.
		msg, err := stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read back chunk %d: %w", i, err)
		}
		if i >= len(m.Chunks) {
			return nil, fmt.Errorf("read back: the hub holds more than the %d chunks sent", len(m.Chunks))
		}
		if err := m.CheckChunk(i, msg.Data); err != nil {
			return nil, fmt.Errorf("read back (sequence %d): %w", msg.Sequence, err)
		}
		seqs = append(seqs, msg.Sequence)
		next = msg.Sequence + 1
	}
	if len(seqs) != len(m.Chunks) {
		return nil, fmt.Errorf("read back: the hub holds %d of the %d chunks sent", len(seqs), len(m.Chunks))
	}
	return seqs, nil
}

// fullReader fills every buffer it is given, but at the end: one Read is
// one chunk to nats.go's Object Store.
type fullReader struct {
	r   io.Reader
	err error
}

func (f *fullReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := io.ReadFull(f.r, p)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		f.err = io.EOF
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	case err != nil:
		f.err = err
	}
	return n, err
}

// FirmwareList returns the manifests in the tenant's firmware bucket,
// each verified with the tenant's firmware key, by name, version
// (firmware.CompareVersions) and platform. A manifest that does not
// verify is an error naming it: something other than canopy-hub wrote
// to the bucket.
func (a *Admin) FirmwareList(ctx context.Context, tenant string) ([]firmware.Manifest, error) {
	t, err := a.keys.Tenant(tenant)
	if err != nil {
		return nil, err
	}
	nc, _, obs, err := a.firmwareStore(ctx, tenant, firmwareReadTTL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return []firmware.Manifest{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tenant %s: list firmware: %w", tenant, err)
	}
	out := []firmware.Manifest{}
	for _, info := range infos {
		if !strings.HasSuffix(info.Name, firmware.ManifestSuffix) {
			continue
		}
		_, m, err := readFirmwareManifest(ctx, obs, info.Name, t.FirmwareKey)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: list firmware: %w", tenant, err)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if c := firmware.CompareVersions(a.Version, b.Version); c != 0 {
			return c < 0
		}
		return a.Platform < b.Platform
	})
	return out, nil
}

// FirmwareManifest returns one published manifest, signed as stored and
// verified with the tenant's firmware key; ErrNoFirmware when there is
// none.
func (a *Admin) FirmwareManifest(ctx context.Context, tenant, name, version, platform string) (signed []byte, m firmware.Manifest, err error) {
	if err := errors.Join(firmware.CheckName("name", name), firmware.CheckName("version", version), firmware.CheckPlatform(platform)); err != nil {
		return nil, firmware.Manifest{}, err
	}
	t, err := a.keys.Tenant(tenant)
	if err != nil {
		return nil, firmware.Manifest{}, err
	}
	nc, _, obs, err := a.firmwareStore(ctx, tenant, firmwareReadTTL)
	if err != nil {
		return nil, firmware.Manifest{}, err
	}
	defer nc.Close()
	signed, m, err = readFirmwareManifest(ctx, obs, firmware.ObjectName(name, version, platform)+firmware.ManifestSuffix, t.FirmwareKey)
	if err != nil {
		return nil, firmware.Manifest{}, fmt.Errorf("tenant %s: %w", tenant, err)
	}
	return signed, m, nil
}

// readFirmwareManifest reads a manifest object and verifies it with key;
// the manifest must describe the artifact beside it.
func readFirmwareManifest(ctx context.Context, obs jetstream.ObjectStore, object, key string) ([]byte, firmware.Manifest, error) {
	signed, err := obs.GetBytes(ctx, object)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, firmware.Manifest{}, fmt.Errorf("firmware %s: %w", strings.TrimSuffix(object, firmware.ManifestSuffix), ErrNoFirmware)
	}
	if err != nil {
		return nil, firmware.Manifest{}, fmt.Errorf("read %s: %w", object, err)
	}
	m, err := firmware.Verify(signed, []string{key})
	if err != nil {
		return nil, firmware.Manifest{}, fmt.Errorf("%s: %w", object, err)
	}
	if want := firmware.ObjectName(m.Name, m.Version, m.Platform); m.Object != want || object != want+firmware.ManifestSuffix {
		return nil, firmware.Manifest{}, fmt.Errorf("%s: the manifest describes %s (object %s)", object, want, m.Object)
	}
	return signed, m, nil
}
