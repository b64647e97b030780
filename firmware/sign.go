package firmware

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/nats-io/nkeys"
)

// MaxSignedSize bounds a Signed document that Verify parses: a manifest
// of an artifact of several GiB in 128 KiB chunks fits.
const MaxSignedSize = 4 << 20

// Signature errors, wrapped with the detail.
var (
	// ErrUntrustedSigner: the manifest is signed by a key the verifier
	// does not trust.
	ErrUntrustedSigner = errors.New("untrusted signer")
	// ErrBadSignature: the signature does not cover the manifest bytes,
	// or is not a signature at all.
	ErrBadSignature = errors.New("bad signature")
)

// Sign validates m and returns its Signed document: m's JSON, the public
// key of kp and kp's signature over exactly that JSON. kp may be any
// nkeys key pair with its seed (the hub's tenant firmware keys are
// account-type keys).
//
// The JSON is json.Marshal's: compact and HTML-escaped, which is what
// json.Marshal makes of a json.RawMessage again, so the signed bytes come
// through unchanged when the document is embedded in another (Desired).
func Sign(m Manifest, kp nkeys.KeyPair) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("sign manifest: signer: %w", err)
	}
	sig, err := kp.Sign(body)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	out, err := json.Marshal(Signed{Manifest: body, Signer: pub, Signature: base64.StdEncoding.EncodeToString(sig)})
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	return out, nil
}

// Verify parses a Signed document and returns its manifest once the
// signer is one of trusted (nkeys public keys), the signature covers the
// manifest's exact bytes (or those bytes with the whitespace between
// tokens removed), and the manifest decodes strictly and passes Validate.
// Errors wrap ErrUntrustedSigner, ErrBadSignature or ErrInvalidManifest.
func Verify(signed []byte, trusted []string) (Manifest, error) {
	if len(signed) > MaxSignedSize {
		return Manifest{}, fmt.Errorf("%w: signed manifest is %d bytes, more than %d", ErrInvalidManifest, len(signed), MaxSignedSize)
	}
	// The envelope carries nothing trusted (the key is checked against
	// trusted, the signature against the key), so it is decoded leniently:
	// a later envelope field must not lock older devices out.
	var s Signed
	if err := json.Unmarshal(signed, &s); err != nil {
		return Manifest{}, fmt.Errorf("%w: signed manifest: %v", ErrInvalidManifest, err)
	}
	if s.Signer == "" {
		return Manifest{}, fmt.Errorf("%w: signed manifest: no signer", ErrBadSignature)
	}
	if !slices.Contains(trusted, s.Signer) {
		return Manifest{}, fmt.Errorf("%w: manifest signed by %s, which this device does not trust", ErrUntrustedSigner, clip(s.Signer))
	}
	key, err := nkeys.FromPublicKey(s.Signer)
	if err != nil {
		// A trusted key that does not parse is the caller's mistake, but
		// nothing may pass.
		return Manifest{}, fmt.Errorf("%w: signer %s: %v", ErrBadSignature, clip(s.Signer), err)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	body := []byte(s.Manifest)
	if err := key.Verify(body, sig); err != nil {
		// Sign's bytes are compact JSON. A document that embeds them may
		// have been re-indented (json.MarshalIndent indents a RawMessage
		// too); whitespace between tokens means nothing, and removing it
		// gives back the signed bytes.
		var compact bytes.Buffer
		if json.Compact(&compact, body) != nil || bytes.Equal(compact.Bytes(), body) || key.Verify(compact.Bytes(), sig) != nil {
			return Manifest{}, fmt.Errorf("%w: manifest signed by %s: %v", ErrBadSignature, s.Signer, err)
		}
		body = compact.Bytes()
	}
	m, err := decodeManifest(body)
	if err != nil {
		return Manifest{}, err
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// decodeManifest decodes signed manifest bytes strictly: an unknown
// field means a format this code does not understand, and trailing data
// means bytes the decoder would skip; neither is acted on.
func decodeManifest(b []byte) (Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Manifest{}, fmt.Errorf("%w: data after the manifest", ErrInvalidManifest)
	}
	return m, nil
}
