/**
 * Loading ioredis leaves String.prototype in V8's dictionary mode: its
 * `class VerbatimString extends String` (resp/verbatim-string.js) makes
 * String.prototype a prototype in set-up, and nothing in the server ever
 * builds a VerbatimString to end that. TurboFan then compiles every string
 * method call in the thread (indexOf, includes, slice on every request) as a
 * generic inline-cache lookup: 2.5% of a put's CPU in a profile, 10% of it
 * in a charCodeAt() loop. Storing a property on a String wrapper makes V8
 * turn the wrapper's prototype chain back into fast mode.
 */
export function restoreFastStringPrototype(): void {
  const wrapper: { fast?: boolean } = Object('');
  wrapper.fast = true;
}
