package firmware_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/canopy-iot/canopy/firmware"
)

// signer is a tenant firmware key as hub/fleet makes them: an account
// key.
func signer(t testing.TB) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return kp, pub
}

func signedManifest(t testing.TB, kp nkeys.KeyPair) (firmware.Manifest, []byte) {
	t.Helper()
	m := published(t, artifact(3*chunk+chunk/2))
	m.Created = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	m.Notes = "fixes the sensor driver"
	signed, err := firmware.Sign(m, kp)
	if err != nil {
		t.Fatal(err)
	}
	return m, signed
}

func TestSignVerify(t *testing.T) {
	kp, pub := signer(t)
	_, other := signer(t)
	m, signed := signedManifest(t, kp)
	got, err := firmware.Verify(signed, []string{other, pub})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("verified manifest\n%+v\nwant\n%+v", got, m)
	}
	var s firmware.Signed
	if err := json.Unmarshal(signed, &s); err != nil || s.Signer != pub {
		t.Fatalf("signed document %s: signer %q (err %v), want %s", signed, s.Signer, err, pub)
	}
}

func TestSignKeyTypes(t *testing.T) {
	// Any nkeys signing key works, whatever its prefix.
	for name, create := range map[string]func() (nkeys.KeyPair, error){
		"user": nkeys.CreateUser, "operator": nkeys.CreateOperator, "server": nkeys.CreateServer,
	} {
		kp, _ := create()
		pub, _ := kp.PublicKey()
		_, signed := signedManifest(t, kp)
		if _, err := firmware.Verify(signed, []string{pub}); err != nil {
			t.Errorf("%s key: %v", name, err)
		}
	}
}

func TestSignRefusesInvalidManifest(t *testing.T) {
	kp, _ := signer(t)
	m := published(t, artifact(10))
	m.Object = ""
	if _, err := firmware.Sign(m, kp); !errors.Is(err, firmware.ErrInvalidManifest) {
		t.Fatalf("Sign: %v, want ErrInvalidManifest", err)
	}
	pubOnly, _ := nkeys.FromPublicKey(func() string { _, p := signer(t); return p }())
	if _, err := firmware.Sign(published(t, artifact(10)), pubOnly); err == nil {
		t.Fatal("signed with a public key only")
	}
}

func TestVerifyUntrustedSigner(t *testing.T) {
	kp, pub := signer(t)
	_, other := signer(t)
	_, signed := signedManifest(t, kp)
	for _, trusted := range [][]string{nil, {other}} {
		_, err := firmware.Verify(signed, trusted)
		if !errors.Is(err, firmware.ErrUntrustedSigner) || !strings.Contains(err.Error(), "manifest signed by "+pub+", which this device does not trust") {
			t.Errorf("trusted %v: %v, want ErrUntrustedSigner naming %s", trusted, err, pub)
		}
	}
	// Claiming a trusted signer does not help: the signature is checked
	// with the claimed key.
	var s firmware.Signed
	json.Unmarshal(signed, &s)
	s.Signer = other
	forged, _ := json.Marshal(s)
	if _, err := firmware.Verify(forged, []string{other}); !errors.Is(err, firmware.ErrBadSignature) {
		t.Errorf("forged signer: %v, want ErrBadSignature", err)
	}
}

func TestVerifyBadSignature(t *testing.T) {
	kp, pub := signer(t)
	_, signed := signedManifest(t, kp)
	var s firmware.Signed
	if err := json.Unmarshal(signed, &s); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(*firmware.Signed)) []byte {
		c := s
		c.Manifest = bytes.Clone(s.Manifest)
		f(&c)
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		// "1.4.0" → "1.5.0": still a valid manifest, but not the signed one.
		"flipped byte in manifest": mutate(func(c *firmware.Signed) {
			c.Manifest = bytes.Replace(c.Manifest, []byte(`"1.4.0"`), []byte(`"1.5.0"`), 1)
		}),
		// The signature covers bytes, even inside strings.
		"space in a string": mutate(func(c *firmware.Signed) {
			c.Manifest = bytes.Replace(c.Manifest, []byte(`"sensor-fw"`), []byte(`"sensor-fw "`), 1)
		}),
		"escaped character": mutate(func(c *firmware.Signed) {
			c.Manifest = bytes.Replace(c.Manifest, []byte(`"sensor-fw"`), []byte(`"sensor\u002dfw"`), 1)
		}),
		"flipped signature bit": mutate(func(c *firmware.Signed) {
			sig, _ := base64.StdEncoding.DecodeString(c.Signature)
			sig[0] ^= 1
			c.Signature = base64.StdEncoding.EncodeToString(sig)
		}),
		"short signature":  mutate(func(c *firmware.Signed) { c.Signature = c.Signature[:20] }),
		"not base64":       mutate(func(c *firmware.Signed) { c.Signature = "!!!" }),
		"no signature":     mutate(func(c *firmware.Signed) { c.Signature = "" }),
		"garbled key":      mutate(func(c *firmware.Signed) { c.Signer = "AXXXX" }),
		"no signer at all": mutate(func(c *firmware.Signed) { c.Signer = "" }),
	}
	for name, doc := range cases {
		var sd firmware.Signed
		json.Unmarshal(doc, &sd)
		if _, err := firmware.Verify(doc, []string{pub, "AXXXX", ""}); !errors.Is(err, firmware.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
}

// envelope writes a Signed document by hand, keeping manifest's bytes as
// they are.
func envelope(manifest []byte, signer, signature string) []byte {
	return fmt.Appendf(nil, `{"manifest":%s,"signer":%q,"signature":%q}`, manifest, signer, signature)
}

// A signed manifest goes into other documents (Desired) as a
// json.RawMessage, which json.Marshal compacts and HTML-escapes: Sign's
// bytes must come out unchanged, or devices could not verify them.
func TestSignedSurvivesEmbedding(t *testing.T) {
	kp, pub := signer(t)
	m := published(t, artifact(chunk))
	m.Notes = "<b>fixes</b> & \u2028   «ünïcode» \"quoted\""
	signed, err := firmware.Sign(m, kp)
	if err != nil {
		t.Fatal(err)
	}
	desired := firmware.Desired{Rollout: "r1", Manifest: signed, Install: true}
	plain, err := json.Marshal(desired)
	if err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(desired, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var s firmware.Signed
	json.Unmarshal(signed, &s)
	for name, doc := range map[string][]byte{
		"json.Marshal":       plain,
		"json.MarshalIndent": indented,
		// Whitespace between tokens, by hand.
		"spaced": envelope(bytes.ReplaceAll(s.Manifest, []byte(`":`), []byte(`" :  `)), s.Signer, s.Signature),
	} {
		if name != "spaced" {
			var d firmware.Desired
			if err := json.Unmarshal(doc, &d); err != nil {
				t.Fatal(err)
			}
			doc = d.Manifest
		}
		got, err := firmware.Verify(doc, []string{pub})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Notes != m.Notes {
			t.Fatalf("%s: notes %q, want %q", name, got.Notes, m.Notes)
		}
	}
}

func TestVerifyStrictManifest(t *testing.T) {
	kp, pub := signer(t)
	m, _ := signedManifest(t, kp)
	body, _ := json.Marshal(m)
	// Properly signed, but not a manifest this code may act on.
	for name, b := range map[string][]byte{
		"unknown field": append(body[:len(body)-1:len(body)-1], []byte(`,"reboot":true}`)...),
		"trailing data": append(bytes.Clone(body), []byte(` {}`)...),
		"invalid":       bytes.Replace(body, []byte(`"linux/arm64"`), []byte(`"Linux/ARM64"`), 1),
		"not an object": []byte(`[1,2,3]`),
	} {
		sig, _ := kp.Sign(b)
		doc := envelope(b, pub, base64.StdEncoding.EncodeToString(sig))
		if _, err := firmware.Verify(doc, []string{pub}); !errors.Is(err, firmware.ErrInvalidManifest) {
			t.Errorf("%s: %v, want ErrInvalidManifest", name, err)
		}
	}
	big := make([]byte, firmware.MaxSignedSize+1)
	if _, err := firmware.Verify(big, []string{pub}); !errors.Is(err, firmware.ErrInvalidManifest) || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("oversized document: %v, want ErrInvalidManifest naming its size", err)
	}
	if _, err := firmware.Verify([]byte(`{"manifest":`), []string{pub}); !errors.Is(err, firmware.ErrInvalidManifest) {
		t.Errorf("truncated document: %v, want ErrInvalidManifest", err)
	}
}

// fuzzKey is fixed so that the fuzzer can reach past the signature: it
// signs what it generates with the key the verifier trusts.
var fuzzKey = func() nkeys.KeyPair {
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteAccount, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		panic(err)
	}
	return kp
}()

// FuzzVerify feeds Verify outside bytes: as a whole document, and as the
// manifest bytes of a document signed with a trusted key (so that the
// strict decoding and Validate are reached). It must never panic, and
// whatever verifies must validate and sign again to the same manifest.
func FuzzVerify(f *testing.F) {
	pub, err := fuzzKey.PublicKey()
	if err != nil {
		f.Fatal(err)
	}
	m, signed := signedManifest(f, fuzzKey)
	body, _ := json.Marshal(m)
	f.Add(signed)
	f.Add(body)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"manifest":null,"signer":"","signature":""}`))
	f.Add([]byte(`{"name":"x","version":"1","platform":"any","size":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","chunk_size":4096,"chunks":[],"object":"x/1/any","seqs":[]}`))
	f.Add([]byte(`{"name":"x","size":-9223372036854775808,"chunk_size":4096,"chunks":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		firmware.Verify(data, []string{pub})
		if !json.Valid(data) {
			return
		}
		sig, err := fuzzKey.Sign(data)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := json.Marshal(firmware.Signed{Manifest: data, Signer: pub, Signature: base64.StdEncoding.EncodeToString(sig)})
		if err != nil {
			return
		}
		got, err := firmware.Verify(doc, []string{pub})
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("verified manifest does not validate: %v", err)
		}
		for i := range got.Chunks {
			got.ChunkLen(i)
		}
		again, err := firmware.Sign(got, fuzzKey)
		if err != nil {
			t.Fatalf("verified manifest does not sign: %v", err)
		}
		back, err := firmware.Verify(again, []string{pub})
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("re-signed manifest: %+v (err %v), want %+v", back, err, got)
		}
	})
}
