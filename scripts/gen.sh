#!/usr/bin/env bash
# Regenerates Go, gateway and OpenAPI code from proto/ with the generators
# pinned in go.mod's tool block, then the OpenAPI 3.1 document (the proto's
# OpenAPI v3 merged with the hand-written routes in gateway/openapi-routes.yaml) and
# the TypeScript client's types from it. google/api/{annotations,http}.proto
# come from a pinned Go module (the buf schema registry is out of reach here),
# google/api/field_behavior.proto from the pinned gnostic module; both are
# copied into the git-ignored .gen/googleapis, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(go mod download -json github.com/grpc-ecosystem/grpc-gateway@v1.16.0 |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "gen: could not download grpc-gateway v1.16.0 for googleapis protos" >&2; exit 1; }
rm -rf .gen/googleapis
mkdir -p .gen/googleapis/google/api
cp "$dir/third_party/googleapis/google/api/annotations.proto" \
   "$dir/third_party/googleapis/google/api/http.proto" .gen/googleapis/google/api/
gnostic=$(go mod download -json github.com/google/gnostic@v0.7.1 |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$gnostic" ] || { echo "gen: could not download gnostic v0.7.1 for field_behavior.proto" >&2; exit 1; }
cp "$gnostic/cmd/protoc-gen-openapi/examples/google/api/field_behavior.proto" .gen/googleapis/google/api/
chmod -R u+w .gen/googleapis

if [ "${1:-}" = "--deps-only" ]; then exit 0; fi

find proto -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs -r rm -f
rm -rf .gen/openapi
go tool buf lint
go tool buf generate
go run ./scripts/openapi -proto .gen/openapi/openapi.yaml -routes gateway/openapi-routes.yaml -out proto/keymint/v1/openapi.json
bash scripts/gen-ts.sh
