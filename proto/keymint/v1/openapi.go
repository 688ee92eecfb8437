package keymintv1

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of keymint's REST routes, served at
// /openapi.json: the protos' OpenAPI v3 (protoc-gen-openapi) merged with the
// hand-written routes of gateway/openapi-routes.yaml by `make gen`
// (scripts/openapi).
//
//go:embed openapi.json
var OpenAPI []byte
