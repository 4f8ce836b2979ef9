// pug-runtime ships no types; the generator uses three of its files at build time only.

declare module 'pug-runtime/build.js' {
  /** The source of the named helpers and of those they call, as functions named pug_<name>. */
  export default function build(functions: string[]): string;
}

declare module 'pug-runtime/lib/internals.js' {
  /** Helpers only other helpers call. */
  const internals: Readonly<Record<string, true>>;
  export default internals;
}

declare module 'pug-runtime/lib/sources.js' {
  /** Every helper's source, by name. */
  const sources: Readonly<Record<string, string>>;
  export default sources;
}
