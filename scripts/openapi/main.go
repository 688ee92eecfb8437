// Command openapi writes keymint's OpenAPI 3.1 document: the OpenAPI v3
// document protoc-gen-openapi generates from the protos (3.0.3), merged with
// the checked-in description of the hand-written routes, and converted to
// 3.1. `make gen` runs it; the output is committed and served at
// /openapi.json.
//
// The routes file is an OpenAPI document of its own (info, tags, paths,
// components) plus three merge keys: x-keymint-operations (keyed
// "method path", deep-merged into the generated operations),
// x-keymint-schemas (deep-merged into the generated schemas: lengths,
// patterns, maxItems) and x-keymint-responses (the responses every generated
// operation may answer besides 200).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	protoPath := flag.String("proto", "", "protoc-gen-openapi output (YAML)")
	routesPath := flag.String("routes", "", "hand-written routes and overlays (YAML)")
	outPath := flag.String("out", "", "OpenAPI 3.1 document to write (JSON)")
	flag.Parse()
	if err := run(*protoPath, *routesPath, *outPath); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		os.Exit(1)
	}
}

type object = map[string]any

func run(protoPath, routesPath, outPath string) error {
	gen, err := load(protoPath)
	if err != nil {
		return err
	}
	routes, err := load(routesPath)
	if err != nil {
		return err
	}
	doc, err := merge(gen, routes)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return os.WriteFile(outPath, buf.Bytes(), 0o644)
}

func load(path string) (object, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var o object
	if err := yaml.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}

// merge builds the 3.1 document from the generated one and the routes file.
func merge(gen, routes object) (object, error) {
	// Work on copies: the merge fills maps in place.
	gen, routes = deepCopy(gen).(object), deepCopy(routes).(object)
	opOverlay, _ := routes["x-keymint-operations"].(object)
	schemaOverlay, _ := routes["x-keymint-schemas"].(object)
	commonResponses, _ := routes["x-keymint-responses"].(object)

	doc := object{}
	for k, v := range routes {
		if !strings.HasPrefix(k, "x-keymint-") {
			doc[k] = v
		}
	}
	doc["openapi"] = "3.1.0"

	paths, _ := doc["paths"].(object)
	if paths == nil {
		paths = object{}
	}
	genPaths, _ := gen["paths"].(object)
	seenIDs := map[string]int{}
	used := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(genPaths)) {
		if _, dup := paths[p]; dup {
			return nil, fmt.Errorf("path %s is both generated and hand-written", p)
		}
		item := genPaths[p].(object)
		for _, m := range slices.Sorted(maps.Keys(item)) {
			op := item[m].(object)
			// protoc-gen-openapi gives every binding of one RPC the same
			// operationId; OpenAPI wants them unique.
			if id, ok := op["operationId"].(string); ok {
				seenIDs[id]++
				if n := seenIDs[id]; n > 1 {
					op["operationId"] = fmt.Sprintf("%s%d", id, n)
				}
			}
			responses, _ := op["responses"].(object)
			for code, r := range commonResponses {
				if _, ok := responses[code]; !ok {
					responses[code] = r
				}
			}
			// The default response stays: it is what grpc-gateway answers
			// for any code not listed.
			key := m + " " + p
			if o, ok := opOverlay[key].(object); ok {
				item[m] = deepMerge(op, o)
				used[key] = true
			}
		}
		paths[p] = item
	}
	for key := range opOverlay {
		if !used[key] {
			return nil, fmt.Errorf("x-keymint-operations: %q names no generated operation", key)
		}
	}
	doc["paths"] = paths

	comps, _ := doc["components"].(object)
	if comps == nil {
		comps = object{}
	}
	schemas, _ := comps["schemas"].(object)
	if schemas == nil {
		schemas = object{}
	}
	genSchemas, _ := gen["components"].(object)["schemas"].(object)
	for name, s := range genSchemas {
		if _, dup := schemas[name]; dup {
			return nil, fmt.Errorf("schema %s is both generated and hand-written", name)
		}
		schemas[name] = s
	}
	for name, o := range schemaOverlay {
		s, ok := schemas[name].(object)
		if !ok {
			return nil, fmt.Errorf("x-keymint-schemas: %q names no schema", name)
		}
		schemas[name] = deepMerge(s, o.(object))
	}
	comps["schemas"] = schemas
	doc["components"] = comps
	anyContentType(paths)
	return to31(doc).(object), nil
}

// anyContentType adds "*/*" beside each application/json request body:
// keymint reads a body as JSON whatever its Content-Type says (curl -d
// sends application/x-www-form-urlencoded).
func anyContentType(paths object) {
	for _, item := range paths {
		for _, op := range item.(object) {
			o, ok := op.(object)
			if !ok {
				continue
			}
			body, _ := o["requestBody"].(object)
			content, _ := body["content"].(object)
			js, ok := content["application/json"].(object)
			if !ok {
				continue
			}
			if _, set := content["*/*"]; !set {
				content["*/*"] = deepCopy(js)
			}
		}
	}
}

// deepCopy copies a decoded JSON value.
func deepCopy(v any) any {
	switch t := v.(type) {
	case object:
		c := make(object, len(t))
		for k, e := range t {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = deepCopy(e)
		}
		return c
	}
	return v
}

// deepMerge merges b into a: objects merge key by key, anything else in b
// replaces a's.
func deepMerge(a, b object) object {
	for k, bv := range b {
		if bo, ok := bv.(object); ok {
			if ao, ok := a[k].(object); ok {
				a[k] = deepMerge(ao, bo)
				continue
			}
		}
		a[k] = bv
	}
	return a
}

// to31 rewrites what OpenAPI 3.1 (JSON Schema 2020-12) spells differently
// from the 3.0.3 protoc-gen-openapi writes: nullable becomes a "null" type,
// and the "enum" pseudo-format goes. Descriptions lose the one-space indent
// protoc-gen-openapi keeps from proto comments.
func to31(v any) any {
	switch t := v.(type) {
	case object:
		if n, ok := t["nullable"].(bool); ok {
			delete(t, "nullable")
			if typ, ok := t["type"].(string); ok && n {
				t["type"] = []any{typ, "null"}
			}
		}
		if t["format"] == "enum" {
			delete(t, "format")
		}
		if d, ok := t["description"].(string); ok {
			t["description"] = strings.ReplaceAll(d, "\n ", "\n")
		}
		for k, c := range t {
			t[k] = to31(c)
		}
		return t
	case []any:
		for i, c := range t {
			t[i] = to31(c)
		}
		return t
	}
	return v
}
