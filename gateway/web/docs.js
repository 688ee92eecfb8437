"use strict";
// Renders /openapi.json as a readable list of routes, with no third-party code.
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
    return schema.format ? schema.type + " (" + schema.format + ")" : (schema.type || "object");
  }

  function render(doc) {
    root.textContent = "";
    const defs = doc.definitions || {};
    Object.keys(doc.paths || {}).sort().forEach(function (path) {
      const ops = doc.paths[path];
      Object.keys(ops).forEach(function (verb) {
        const op = ops[verb];
        const box = el("section", undefined, "op");
        const h = el("h3");
        h.appendChild(el("span", verb.toUpperCase(), "verb"));
        h.appendChild(document.createTextNode(path));
        box.appendChild(h);
        if (op.summary || op.description) box.appendChild(el("p", op.summary || op.description));
        const params = op.parameters || [];
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
        const ok = (op.responses || {})["200"];
        if (ok && ok.schema) {
          box.appendChild(el("p", "Answer:"));
          box.appendChild(el("pre", schemaText(ok.schema, defs, 0)));
        }
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
