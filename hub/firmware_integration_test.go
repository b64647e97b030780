package hub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/canopy-iot/canopy/firmware"
	"github.com/canopy-iot/canopy/hub"
	"github.com/canopy-iot/canopy/hub/fleet"
)

// firmwareHub is an operator-mode hub with tenants t1 and t2.
func firmwareHub(t *testing.T) (*node, *hub.Admin, *fleet.Keys) {
	t.Helper()
	keys := fleetKeys(t)
	h := startHub(t, operatorConfig(t, keys))
	admin := hub.NewAdmin(h.ClientURL(), nil, keys)
	addTenant(t, admin, keys, "t1", fleet.DefaultLimits(), 1)
	addTenant(t, admin, keys, "t2", fleet.DefaultLimits(), 1)
	return h, admin, keys
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func firmwareKey(t testing.TB, keys *fleet.Keys, tenant string) string {
	t.Helper()
	tt, err := keys.Tenant(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return tt.FirmwareKey
}

// directGet asks for a message of stream OBJ_firmware by sequence as a
// device does, with a raw request, and returns the reply.
func directGet(t *testing.T, nc *nats.Conn, seq uint64) *nats.Msg {
	t.Helper()
	reply, err := nc.Request("$JS.canopy.API.DIRECT.GET."+hub.FirmwareStream, fmt.Appendf(nil, `{"seq":%d}`, seq), 10*time.Second)
	if err != nil {
		t.Fatalf("direct get of sequence %d: %v", seq, err)
	}
	return reply
}

func TestIntegrationFirmwarePublish(t *testing.T) {
	h, admin, keys := firmwareHub(t)
	ctx := context.Background()
	data := randomBytes(t, 3<<20)
	const chunk = 128 << 10
	meta := hub.FirmwareMeta{Name: "sensor-fw", Version: "1.4.0", Platform: "linux/arm64", Notes: "fixes the driver", ChunkSize: chunk}
	// Half reads prove that chunks follow the chunk size, not the reads.
	m, err := admin.PublishFirmware(ctx, "t1", meta, iotest.HalfReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatalf("PublishFirmware: %v", err)
	}
	if m.Size != int64(len(data)) || m.ChunkSize != chunk || len(m.Chunks) != 24 || len(m.Seqs) != 24 ||
		m.Object != "sensor-fw/1.4.0/linux/arm64" || m.Notes != meta.Notes || m.Created.IsZero() {
		t.Fatalf("manifest: size %d, chunk size %d, %d chunks, %d seqs, object %q, notes %q, created %v",
			m.Size, m.ChunkSize, len(m.Chunks), len(m.Seqs), m.Object, m.Notes, m.Created)
	}
	if err := m.Check(bytes.NewReader(data)); err != nil {
		t.Fatalf("manifest does not describe the artifact: %v", err)
	}

	// The stored manifest is signed by t1's firmware key only.
	signed, stored, err := admin.FirmwareManifest(ctx, "t1", "sensor-fw", "1.4.0", "linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	verified, err := firmware.Verify(signed, []string{firmwareKey(t, keys, "t1")})
	if err != nil {
		t.Fatalf("manifest does not verify with the tenant's firmware key: %v", err)
	}
	if !slices.Equal(verified.Seqs, m.Seqs) || !slices.Equal(stored.Chunks, m.Chunks) || verified.SHA256 != m.SHA256 {
		t.Fatalf("stored manifest differs from the published one:\n%+v\n%+v", verified, m)
	}
	if _, err := firmware.Verify(signed, []string{firmwareKey(t, keys, "t2")}); !errors.Is(err, firmware.ErrUntrustedSigner) {
		t.Fatalf("verified with another tenant's key: %v, want ErrUntrustedSigner", err)
	}

	// Each chunk is the message at its sequence.
	js, err := jetstream.New(adminConn(t, h.ClientURL(), keys, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, hub.FirmwareStream)
	if err != nil {
		t.Fatal(err)
	}
	for i, seq := range m.Seqs {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("chunk %d at sequence %d: %v", i, seq, err)
		}
		if err := m.CheckChunk(i, msg.Data); err != nil {
			t.Fatalf("sequence %d: %v", seq, err)
		}
	}

	// The listing shows it, in version order with others.
	for _, v := range []string{"1.10.0", "1.9.0"} {
		meta := hub.FirmwareMeta{Name: "sensor-fw", Version: v, Platform: "linux/arm64"}
		if _, err := admin.PublishFirmware(ctx, "t1", meta, bytes.NewReader(data[:1000])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.PublishFirmware(ctx, "t1", hub.FirmwareMeta{Name: "empty", Version: "1", Platform: "any"}, bytes.NewReader(nil)); err != nil {
		t.Fatalf("publish an empty artifact: %v", err)
	}
	list, err := admin.FirmwareList(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Object)
	}
	want := []string{"empty/1/any", "sensor-fw/1.4.0/linux/arm64", "sensor-fw/1.9.0/linux/arm64", "sensor-fw/1.10.0/linux/arm64"}
	if !slices.Equal(names, want) {
		t.Fatalf("list %v, want %v", names, want)
	}
	if list[1].SHA256 != m.SHA256 || !slices.Equal(list[1].Seqs, m.Seqs) {
		t.Fatalf("listed manifest %+v, want %+v", list[1], m)
	}
	if other, err := admin.FirmwareList(ctx, "t2"); err != nil || len(other) != 0 {
		t.Fatalf("tenant t2 lists %v (err %v), want nothing", other, err)
	}

	// A device fetches chunks with its own permissions, as the leaf's
	// agent does: a direct get by sequence.
	creds, err := keys.AddDevice("t1", "pi-001")
	if err != nil {
		t.Fatal(err)
	}
	errs := newErrCollector()
	dev := connectCreds(t, h.ClientURL(), creds, nats.CustomInboxPrefix("_INBOX.pi-001"), nats.ErrorHandler(errs.handler))
	for i, seq := range m.Seqs {
		reply := directGet(t, dev, seq)
		if got := reply.Header.Get(jetstream.SequenceHeader); got != strconv.FormatUint(seq, 10) {
			t.Fatalf("chunk %d: reply for sequence %q (status %q), want %d", i, got, reply.Header.Get("Status"), seq)
		}
		if err := m.CheckChunk(i, reply.Data); err != nil {
			t.Fatalf("device fetch: %v", err)
		}
	}
	// It cannot write to the bucket.
	for _, subj := range []string{"$O.firmware.C.forged", "$O.firmware.M.c2Vuc29yLWZ3LzEuNC4wL2xpbnV4L2FybTY0"} {
		if err := dev.Publish(subj, []byte("evil")); err != nil {
			t.Fatal(err)
		}
		if err := errs.next(t); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("publish %s: %v, want a permission violation", subj, err)
		}
	}
	// A device of t2 reads its own tenant's (empty) stream, not t1's.
	creds2, err := keys.AddDevice("t2", "pi-002")
	if err != nil {
		t.Fatal(err)
	}
	dev2 := connectCreds(t, h.ClientURL(), creds2, nats.CustomInboxPrefix("_INBOX.pi-002"))
	if reply := directGet(t, dev2, m.Seqs[0]); len(reply.Data) != 0 || reply.Header.Get("Status") != "404" {
		t.Fatalf("t2's device got %d bytes (status %q) at t1's sequence, want a 404", len(reply.Data), reply.Header.Get("Status"))
	}
}

func TestIntegrationFirmwareRepublish(t *testing.T) {
	h, admin, keys := firmwareHub(t)
	ctx := context.Background()
	meta := hub.FirmwareMeta{Name: "canopy-leaf", Version: "2.0.0", Platform: "linux/arm", ChunkSize: 16 << 10}
	old, err := admin.PublishFirmware(ctx, "t1", meta, bytes.NewReader(randomBytes(t, 100<<10)))
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(t, 50<<10+1)
	m, err := admin.PublishFirmware(ctx, "t1", meta, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("republish: %v", err)
	}
	if len(m.Chunks) != 4 || m.SHA256 == old.SHA256 || m.Seqs[0] <= old.Seqs[len(old.Seqs)-1] {
		t.Fatalf("republished manifest: %d chunks, seqs %v after %v", len(m.Chunks), m.Seqs, old.Seqs)
	}
	_, stored, err := admin.FirmwareManifest(ctx, "t1", meta.Name, meta.Version, meta.Platform)
	if err != nil || stored.SHA256 != m.SHA256 || !slices.Equal(stored.Seqs, m.Seqs) {
		t.Fatalf("stored manifest %+v (err %v), want the new one", stored, err)
	}
	list, err := admin.FirmwareList(ctx, "t1")
	if err != nil || len(list) != 1 || list[0].SHA256 != m.SHA256 {
		t.Fatalf("list %+v (err %v), want only the new manifest", list, err)
	}
	// The old chunks are gone; the new ones are where the manifest says.
	dev := connectCreds(t, h.ClientURL(), mustDevice(t, keys, "t1", "pi-001"), nats.CustomInboxPrefix("_INBOX.pi-001"))
	for _, seq := range old.Seqs {
		if reply := directGet(t, dev, seq); reply.Header.Get("Status") != "404" {
			t.Fatalf("old chunk at sequence %d still there (%d bytes)", seq, len(reply.Data))
		}
	}
	var got []byte
	for _, seq := range m.Seqs {
		got = append(got, directGet(t, dev, seq).Data...)
	}
	if err := m.Check(bytes.NewReader(got)); err != nil {
		t.Fatalf("chunks fetched by the new sequences: %v", err)
	}
}

func mustDevice(t *testing.T, keys *fleet.Keys, tenant, device string) []byte {
	t.Helper()
	creds, err := keys.AddDevice(tenant, device)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func TestIntegrationFirmwarePublishRefuses(t *testing.T) {
	_, admin, _ := firmwareHub(t)
	ctx := context.Background()
	good := hub.FirmwareMeta{Name: "sensor-fw", Version: "1.0.0", Platform: "linux/arm64"}
	if _, err := admin.PublishFirmware(ctx, "t1", good, bytes.NewReader([]byte("first"))); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name   string
		tenant string
		meta   hub.FirmwareMeta
		body   io.Reader
		want   []string
	}{
		{"bad meta", "t1", hub.FirmwareMeta{Name: "", Version: "1 0", Platform: "Linux/ARM64", ChunkSize: 100},
			strings.NewReader("x"), []string{"name", "version", "platform", "chunk size"}},
		{"unknown tenant", "nobody", good, strings.NewReader("x"), []string{fleet.ErrNoTenant.Error()}},
		{"chunk beyond max_payload", "t1", hub.FirmwareMeta{Name: "big", Version: "1", Platform: "any", ChunkSize: 4 << 20},
			strings.NewReader("x"), []string{"max_payload"}},
		{"read error", "t1", hub.FirmwareMeta{Name: "broken", Version: "1", Platform: "any"},
			io.MultiReader(bytes.NewReader(make([]byte, 300<<10)), iotest.ErrReader(errors.New("disk on fire"))), []string{"disk on fire"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := admin.PublishFirmware(ctx, tt.tenant, tt.meta, tt.body)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("PublishFirmware: %v, want an error naming %q", err, w)
				}
			}
		})
	}
	// Nothing of the refused publications is listed; the first stays.
	list, err := admin.FirmwareList(ctx, "t1")
	if err != nil || len(list) != 1 || list[0].Object != "sensor-fw/1.0.0/linux/arm64" {
		t.Fatalf("list %+v (err %v), want only sensor-fw 1.0.0", list, err)
	}
	if _, _, err := admin.FirmwareManifest(ctx, "t1", "sensor-fw", "9.9.9", "linux/arm64"); !errors.Is(err, hub.ErrNoFirmware) {
		t.Fatalf("FirmwareManifest of a missing version: %v, want ErrNoFirmware", err)
	}
}
