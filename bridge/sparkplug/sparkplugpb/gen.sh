#!/bin/sh
# Regenerates sparkplug_b.pb.go from sparkplug_b.proto with protoc (Debian's
# protobuf-compiler) and protoc-gen-go built at the google.golang.org/protobuf
# version go.mod requires, so the generated code always matches the runtime
# it is compiled against. `go generate ./bridge/sparkplug/sparkplugpb` runs it.
set -eu
cd "$(dirname "$0")"
command -v protoc >/dev/null || { echo "gen.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" --go_out=. --go_opt=paths=source_relative sparkplug_b.proto
