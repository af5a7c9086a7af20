// node:test reporter writing one "OUTCOME<TAB>TEST-NAME" line per top-level test
// (OUTCOME: pass, fail or skip), the input of lib/summarize.py.
export default async function* results(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { name, nesting, skip, todo } = event.data;
    // Nested reports are subtests; a file's own failure (e.g. a syntax error) has the
    // file name as its test name and nesting 0, and counts as a failure.
    if (nesting !== 0) continue;
    const outcome = skip || todo ? 'skip' : event.type === 'test:pass' ? 'pass' : 'fail';
    yield `${outcome}\t${name}\n`;
  }
}
