package main

import (
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	gen := object{
		"openapi": "3.0.3",
		"paths": object{
			"/v1/a": object{
				"get":    object{"operationId": "S_A", "responses": object{"200": object{"description": "OK"}}},
				"delete": object{"operationId": "S_A", "responses": object{"200": object{"description": "OK"}}},
				"post": object{"operationId": "S_B", "responses": object{"200": object{"description": "OK"}},
					"requestBody": object{"content": object{"application/json": object{"schema": object{"$ref": "#/components/schemas/A"}}}}},
			},
		},
		"components": object{"schemas": object{
			"A": object{"type": "object", "properties": object{
				"n": object{"type": "string", "nullable": true, "description": "one\n two"},
				"e": object{"type": "string", "format": "enum", "enum": []any{"X"}},
			}},
		}},
	}
	routes := object{
		"info":                 object{"title": "t", "version": "1"},
		"paths":                object{"/healthz": object{"get": object{"operationId": "H"}}},
		"x-keymint-responses":  object{"400": object{"$ref": "#/components/responses/BadRequest"}},
		"x-keymint-operations": object{"get /v1/a": object{"security": []any{}}},
		"x-keymint-schemas":    object{"A": object{"properties": object{"n": object{"maxLength": 5}}}},
	}
	doc, err := merge(gen, routes)
	if err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	paths := doc["paths"].(object)
	a := paths["/v1/a"].(object)
	ids := map[any]bool{}
	for _, m := range []string{"get", "delete", "post"} {
		op := a[m].(object)
		ids[op["operationId"]] = true
		if _, ok := op["responses"].(object)["400"]; !ok {
			t.Errorf("%s lacks the common 400", m)
		}
	}
	if len(ids) != 3 {
		t.Errorf("operation ids not unique: %v", ids)
	}
	if _, ok := a["get"].(object)["security"]; !ok {
		t.Error("operation overlay not applied")
	}
	if _, ok := a["post"].(object)["requestBody"].(object)["content"].(object)["*/*"]; !ok {
		t.Error("no */* body")
	}
	if _, ok := paths["/healthz"]; !ok {
		t.Error("hand-written path lost")
	}
	props := doc["components"].(object)["schemas"].(object)["A"].(object)["properties"].(object)
	n := props["n"].(object)
	if typ, _ := n["type"].([]any); len(typ) != 2 || typ[1] != "null" || n["maxLength"] != 5 || n["description"] != "one\ntwo" {
		t.Errorf("n = %v", n)
	}
	if _, ok := props["e"].(object)["format"]; ok {
		t.Error("enum pseudo-format kept")
	}
	for _, k := range []string{"x-keymint-responses", "x-keymint-operations", "x-keymint-schemas"} {
		if _, ok := doc[k]; ok {
			t.Errorf("merge key %s in the output", k)
		}
	}

	routes["x-keymint-operations"] = object{"get /v1/nope": object{}}
	if _, err := merge(gen, routes); err == nil || !strings.Contains(err.Error(), "/v1/nope") {
		t.Errorf("an overlay naming no operation: %v", err)
	}
}
