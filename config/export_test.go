package config

// Internals the external tests (package config_test, which can import the
// adapter kinds) use.
var (
	Parse      = parse
	FieldIndex = fieldIndex
	AsSlice    = asSlice
)

const MaxSecretFile = maxSecretFile

// TestEnv is the environment the tests load configs with.
var TestEnv = env

func env(name string) (string, bool) {
	v, ok := map[string]string{"CLOUD_PASSWORD": "hunter2", "BROKER": "broker.example.com", "EMPTY": "", "TRICKY": "q\"\n[evil]\nx = '"}[name]
	return v, ok
}

const (
	MaxDepth    = maxDepth
	MaxKeyParts = maxKeyParts
	MaxKeyLen   = maxKeyLen
	MaxItems    = maxItems
	MaxErrors   = maxErrors
)
