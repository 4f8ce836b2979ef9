/**
 * Waits for something written off the request path (the activity log) to land: true as soon as
 * `check` is, false after about `withinMs`.
 */
export async function eventually(check: () => Promise<boolean>, withinMs = 10_000): Promise<boolean> {
  for (let waited = 0; waited < withinMs; waited += 100) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}
