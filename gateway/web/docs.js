"use strict";
// Renders /openapi.json (OpenAPI 3.1) as a readable list of routes, with no
// third-party code.
(function () {
  const root = document.getElementById("docs");

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function refName(ref) {
    return ref ? ref.split("/").pop() : "";
  }

  function schemaText(schema, defs, depth) {
    if (!schema) return "";
    if (schema.$ref) {
      const name = refName(schema.$ref);
      const def = defs[name];
      if (!def || depth > 2) return name;
      return name + " " + schemaText(def, defs, depth + 1);
    }
    if (schema.type === "array") return "[" + schemaText(schema.items, defs, depth) + "]";
    if (schema.properties) {
      const indent = "  ".repeat(depth + 1);
      const lines = Object.keys(schema.properties).map(function (k) {
        return indent + k + ": " + schemaText(schema.properties[k], defs, depth + 1);
      });
      return "{\n" + lines.join("\n") + "\n" + "  ".repeat(depth) + "}";
    }
    if (schema.allOf && schema.allOf.length === 1) return schemaText(schema.allOf[0], defs, depth);
    const type = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "object");
    return schema.format ? type + " (" + schema.format + ")" : type;
  }

  // jsonSchema is the JSON schema of a request body or response, if any.
  function jsonSchema(part) {
    const c = part && part.content && (part.content["application/json"] || part.content["text/plain"]);
    return c ? c.schema : undefined;
  }

  function render(doc) {
    root.textContent = "";
    const defs = (doc.components && doc.components.schemas) || {};
    const methods = ["get", "head", "post", "put", "patch", "delete", "options"];
    Object.keys(doc.paths || {}).sort().forEach(function (path) {
      const ops = doc.paths[path];
      Object.keys(ops).filter(function (k) { return methods.indexOf(k) >= 0; }).forEach(function (verb) {
        const op = ops[verb];
        const box = el("section", undefined, "op");
        const h = el("h3");
        h.appendChild(el("span", verb.toUpperCase(), "verb"));
        h.appendChild(document.createTextNode(path));
        box.appendChild(h);
        if (op.summary || op.description) box.appendChild(el("p", op.summary || op.description));
        const params = (ops.parameters || []).concat(op.parameters || []);
        if (params.length) {
          const t = el("table");
          const head = el("tr");
          ["parameter", "in", "type"].forEach(function (c) { head.appendChild(el("th", c)); });
          t.appendChild(head);
          params.forEach(function (p) {
            const r = el("tr");
            r.appendChild(el("td", p.name + (p.required ? " (required)" : "")));
            r.appendChild(el("td", p.in));
            r.appendChild(el("td", p.schema ? schemaText(p.schema, defs, 0) : (p.type || "")));
            t.appendChild(r);
          });
          box.appendChild(t);
        }
        const body = jsonSchema(op.requestBody);
        if (body) {
          box.appendChild(el("p", "Body:"));
          box.appendChild(el("pre", schemaText(body, defs, 0)));
        }
        const responses = op.responses || {};
        const okCode = ["200", "201", "204"].find(function (c) { return responses[c]; });
        const answer = okCode && jsonSchema(responses[okCode]);
        if (answer) {
          box.appendChild(el("p", "Answer (" + okCode + "):"));
          box.appendChild(el("pre", schemaText(answer, defs, 0)));
        }
        const errors = Object.keys(responses).filter(function (c) { return c >= "400" && c !== "default"; });
        if (errors.length) box.appendChild(el("p", "Errors: " + errors.join(", ")));
        root.appendChild(box);
      });
    });
  }

  fetch("/openapi.json", { headers: { Accept: "application/json" } })
    .then(function (r) {
      if (!r.ok) throw new Error("the API document could not be loaded (HTTP " + r.status + ")");
      return r.json();
    })
    .then(render)
    .catch(function (err) {
      root.textContent = "";
      root.appendChild(el("p", err.message, "error"));
    });
})();
