package keymintv1

import _ "embed"

// OpenAPI is the OpenAPI v2 document of keymint's REST routes, generated from
// the protos by `make gen` (protoc-gen-openapiv2), served at /openapi.json.
//
//go:embed keymint.swagger.json
var OpenAPI []byte
