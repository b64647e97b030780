package auth

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canopy-iot/canopy/internal/config"
)

func TestValidate(t *testing.T) {
	nk := newNKeyUser(t)
	nk2 := newNKeyUser(t)
	missing := filepath.Join(t.TempDir(), "missing")
	empty := secretFile(t, " \n")
	good := hash(t, "pw")

	tests := []struct {
		name string
		cfg  Config
		want []string // every error text, in order
	}{
		{name: "zero value", cfg: Config{}},
		{name: "token", cfg: Config{Token: "t"}},
		{name: "bcrypt token", cfg: Config{Token: good}},
		{name: "token file", cfg: Config{TokenFile: secretFile(t, "t\n")}},
		{name: "users", cfg: Config{Users: []UserConfig{
			{User: "a", Password: "p"},
			{User: "b", Password: good},
			{User: "c", PasswordFile: secretFile(t, good)},
			{NKey: nk.pub},
			{NKey: nk2.pub, Permissions: Permissions{
				Publish:        SubjectPermission{Allow: []string{"a.>", "b.*.c"}, Deny: []string{">"}},
				Subscribe:      SubjectPermission{Allow: []string{"x", "x.* q", "y workers.*"}, Deny: []string{"x.secret", "x.* q.>"}},
				AllowResponses: true,
			}},
		}}},
		{
			name: "token and users",
			cfg:  Config{Token: "t", Users: []UserConfig{{User: "a", Password: "p"}}},
			want: []string{"authorization.token: set either a token or users, not both"},
		},
		{
			name: "token file and users",
			cfg:  Config{TokenFile: secretFile(t, "t"), Users: []UserConfig{{NKey: nk.pub}}},
			want: []string{"authorization.token_file: set either a token or users, not both"},
		},
		{
			name: "token and token file",
			cfg:  Config{Token: "t", TokenFile: secretFile(t, "t")},
			want: []string{"authorization.token_file: set either token or token_file, not both"},
		},
		{
			name: "unreadable token file",
			cfg:  Config{TokenFile: missing},
			want: []string{"authorization.token_file: cannot read " + missing + ": no such file or directory"},
		},
		{
			name: "empty token file",
			cfg:  Config{TokenFile: empty},
			want: []string{"authorization.token_file: " + empty + " is empty"},
		},
		{
			name: "malformed bcrypt token",
			cfg:  Config{Token: good[:50]},
			want: []string{"authorization.token: looks like a bcrypt hash but is not a valid one"},
		},
		{
			name: "every user problem at once",
			cfg: Config{Users: []UserConfig{
				{User: "a", Password: "p"},
				{User: "a", Password: "q"},
				{User: "b"},
				{Password: "p"},
				{NKey: "SUAKYRHVIOREXV7EUZTBHUHL7NUMHPMAS7QMDU3GTIUWEI5LDNOXD43IZY"},
				{NKey: nk.pub, User: "n"},
				{NKey: nk.pub},
				{User: "c", Password: "p", PasswordFile: secretFile(t, "p")},
				{User: "d", PasswordFile: missing},
				{User: "e", Password: "$2a$10$tooshort"},
			}},
			want: []string{
				`authorization.users[1].user: user "a" is already defined at authorization.users[0]`,
				`authorization.users[2].password: required with user (or set password_file)`,
				`authorization.users[3]: needs user and password, or nkey`,
				`authorization.users[4].nkey: not a user public key (want 56 characters starting with "U")`,
				`authorization.users[5]: set either nkey, or user and password, not both`,
				`authorization.users[6].nkey: same nkey as authorization.users[5]`,
				`authorization.users[7].password_file: set either password or password_file, not both`,
				`authorization.users[8].password_file: cannot read ` + missing + `: no such file or directory`,
				`authorization.users[9].password: looks like a bcrypt hash but is not a valid one`,
			},
		},
		{
			name: "invalid permission filters",
			cfg: Config{Users: []UserConfig{{User: "a", Password: "p", Permissions: Permissions{
				Publish:   SubjectPermission{Allow: []string{"ok", "a..b", ""}, Deny: []string{"a.>.b", "a q"}},
				Subscribe: SubjectPermission{Allow: []string{"ok q", "a b c", "  "}, Deny: []string{"a.>.b q", "a q..x"}},
			}}}},
			want: []string{
				`authorization.users[0].permissions.publish.allow[1]: invalid subject "a..b"`,
				`authorization.users[0].permissions.publish.allow[2]: invalid subject ""`,
				`authorization.users[0].permissions.publish.deny[0]: invalid subject "a.>.b"`,
				`authorization.users[0].permissions.publish.deny[1]: invalid subject "a q"`,
				`authorization.users[0].permissions.subscribe.allow[1]: invalid entry "a b c" (want "subject" or "subject queue")`,
				`authorization.users[0].permissions.subscribe.allow[2]: invalid entry "  " (want "subject" or "subject queue")`,
				`authorization.users[0].permissions.subscribe.deny[0]: invalid subject "a.>.b"`,
				`authorization.users[0].permissions.subscribe.deny[1]: invalid queue group "q..x"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range config.Flatten(tt.cfg.Validate()) {
				var ce *config.Error
				if !errors.As(e, &ce) {
					t.Errorf("%v is not a *config.Error", e)
				}
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("Validate:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestValidateKeepsSecretsOut checks that no error text repeats a secret,
// whether from the file or from a secret file.
func TestValidateKeepsSecretsOut(t *testing.T) {
	const secret = "$2a$10$hunter2hunter2hunter2"
	cfg := Config{Token: secret, Users: []UserConfig{
		{User: "a", Password: secret, PasswordFile: secretFile(t, secret)},
		{User: "b", PasswordFile: secretFile(t, secret)},
	}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("secret in error: %v", err)
	}
}

func TestConfigString(t *testing.T) {
	nk := newNKeyUser(t)
	cfg := Config{Token: "hunter2", Users: []UserConfig{
		{User: "a", Password: "hunter2"},
		{User: "b", PasswordFile: "/etc/canopy/b.pw"},
		{NKey: nk.pub},
	}}
	want := "{token:<redacted> users:[{user:a password:<redacted>} {user:b password_file:/etc/canopy/b.pw} {nkey:" + nk.pub + "}]}"
	if got := cfg.String(); got != want {
		t.Errorf("String() = %s\nwant        %s", got, want)
	}
	// Printed inside a bigger struct, as a logger would.
	outer := struct{ Authorization Config }{cfg}
	for _, s := range []string{fmt.Sprint(outer), fmt.Sprintf("%+v", outer), fmt.Sprintf("%v", &outer)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("secret printed: %s", s)
		}
	}
}

// TestConfigYAML decodes a leaf.yaml section with the shared loader, so
// the YAML keys are the documented ones and errors find their lines.
func TestConfigYAML(t *testing.T) {
	nk := newNKeyUser(t)
	type leafFile struct {
		Version       int    `yaml:"version"`
		Authorization Config `yaml:"authorization"`
	}
	data := `version: 1
authorization:
  users:
    - user: sensor
      password: pw
      permissions:
        publish:
          allow: ["telemetry.>"]
          deny: [telemetry.secret]
        subscribe:
          allow: ["cmd.sensor.>", "jobs.* workers"]
        allow_responses: true
    - nkey: ` + nk.pub + `
    - nkey: UNOTAKEY
`
	var f leafFile
	src, err := config.Decode("leaf.yaml", []byte(data), nil, &f)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Users: []UserConfig{
		{User: "sensor", Password: "pw", Permissions: Permissions{
			Publish:        SubjectPermission{Allow: []string{"telemetry.>"}, Deny: []string{"telemetry.secret"}},
			Subscribe:      SubjectPermission{Allow: []string{"cmd.sensor.>", "jobs.* workers"}},
			AllowResponses: true,
		}},
		{NKey: nk.pub},
		{NKey: "UNOTAKEY"},
	}}
	if fmt.Sprintf("%#v", f.Authorization) != fmt.Sprintf("%#v", want) {
		t.Errorf("decoded\n%#v\nwant\n%#v", f.Authorization, want)
	}
	err = src.Place(f.Authorization.Validate())
	const wantErr = `leaf.yaml:14: authorization.users[2].nkey: not a user public key (want 56 characters starting with "U")`
	if err == nil || err.Error() != wantErr {
		t.Errorf("placed error %v, want %s", err, wantErr)
	}
}
