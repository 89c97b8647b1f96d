// Runs one suite module's exported `cases` in order and publishes the
// results as plain data for the Go side (testenv.JSCases). A case passes when
// its promise resolves; the suite loading at all is reported as a case too,
// so a syntax error in liqstream.js fails the test instead of timing out.
const params = new URLSearchParams(location.search);
const suite = params.get("suite");
const prefix = params.get("prefix") || "";
const results = [];
try {
  const { cases } = await import(`./${suite}`);
  for (const [name, fn] of Object.entries(cases)) {
    if (!name.startsWith(prefix)) continue;
    try {
      await fn();
      results.push({ name, pass: true });
    } catch (err) {
      results.push({ name, pass: false, error: String(err && err.stack ? err.stack : err) });
    }
  }
} catch (err) {
  results.push({ name: `load ${suite}`, pass: false, error: String(err && err.stack ? err.stack : err) });
}
window.__results = results;
window.__done = true;
document.getElementById("out").textContent = results.map((r) => `${r.pass ? "ok  " : "FAIL"} ${r.name}${r.error ? "\n     " + r.error : ""}`).join("\n");
