/**
 * JSONP safety. A callback name is script that runs in the page that loaded
 * it, so only plain identifier paths are accepted (no calls, brackets or
 * operators), no segment of the path may be a reserved name (below), and the
 * JSON placed inside must also be valid script text.
 */

const CALLBACK = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/**
 * Names no callback segment may be, whatever --jsonp-callback allows: the
 * one list, documented in the README ("JSONP callbacks") and tested segment
 * by segment in test/jsonp.test.ts.
 *
 * Why: a page that loads `?callback=<from its own URL>` lets another site
 * choose the callback, and the script then calls that function in the page's
 * origin (same-origin method execution, SOME): `opener.document.body.
 * firstElementChild.click` clicks a button of another window of that origin,
 * `location.assign` navigates, `constructor.constructor` reaches Function.
 * An attacker cannot pass arguments (the argument is always our JSON), so
 * what matters is which function a path can reach. The list holds every name
 * that leads out of the page's own objects (windows, frames, the document,
 * the DOM tree, prototypes, constructors, storage), every function that acts
 * on its own (navigation, clicks, form submission, document writes, timers,
 * eval, network, workers, dialogs), and JavaScript's reserved words (not
 * identifiers, `import(...)` would load a module). A legitimate callback
 * (`jQuery123_456`, `app.onComet`) names the application's own function and
 * has no reason to pass through any of them.
 *
 * Matched exactly: JavaScript names are case-sensitive, so `Document` is a
 * different binding from `document` (the Document interface, which throws
 * when called) and an application's `App.Open` is not `open`. The capitalised
 * built-ins that are dangerous in their own right (Function, Object,
 * Reflect, Worker, ...) are listed as such.
 */
export const RESERVED_CALLBACK_SEGMENTS: ReadonlySet<string> = new Set([
  // Prototype and object plumbing: reach Function and Object, redefine properties.
  '__proto__',
  'constructor',
  'prototype',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
  'call',
  'apply',
  'bind',
  'valueOf',
  'toString',
  'toLocaleString',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  // Built-ins that run or reflect code.
  'globalThis',
  'eval',
  'Function',
  'AsyncFunction',
  'GeneratorFunction',
  'Object',
  'Reflect',
  'Proxy',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'queueMicrotask',
  'requestAnimationFrame',
  'requestIdleCallback',
  'execScript',
  'importScripts',
  // Windows and frames: ways out of the page into another one of its origin.
  'window',
  'self',
  'top',
  'parent',
  'opener',
  'frames',
  'frameElement',
  'content',
  'contentWindow',
  'contentDocument',
  'defaultView',
  'open',
  'close',
  'stop',
  'focus',
  'blur',
  'print',
  'postMessage',
  // Dialogs.
  'alert',
  'confirm',
  'prompt',
  // Navigation and history.
  'location',
  'history',
  'navigation',
  'navigate',
  'assign',
  'replace',
  'reload',
  'href',
  'back',
  'forward',
  'go',
  'pushState',
  'replaceState',
  // The document and its collections.
  'document',
  'ownerDocument',
  'documentElement',
  'body',
  'head',
  'forms',
  'images',
  'links',
  'anchors',
  'scripts',
  'embeds',
  'plugins',
  'all',
  'cookie',
  'domain',
  'write',
  'writeln',
  'execCommand',
  // Walking the DOM tree to an element.
  'children',
  'childNodes',
  'firstChild',
  'lastChild',
  'firstElementChild',
  'lastElementChild',
  'nextSibling',
  'previousSibling',
  'nextElementSibling',
  'previousElementSibling',
  'parentNode',
  'parentElement',
  'offsetParent',
  'activeElement',
  // Acting on an element.
  'click',
  'submit',
  'requestSubmit',
  'reset',
  'dispatchEvent',
  'innerHTML',
  'outerHTML',
  'insertAdjacentHTML',
  'insertAdjacentElement',
  'insertAdjacentText',
  'setHTMLUnsafe',
  'srcdoc',
  'append',
  'prepend',
  'appendChild',
  'before',
  'after',
  'remove',
  'removeChild',
  'replaceWith',
  'replaceChildren',
  'setAttribute',
  // Browser state, storage, network and workers.
  'navigator',
  'localStorage',
  'sessionStorage',
  'indexedDB',
  'caches',
  'cookieStore',
  'serviceWorker',
  'fetch',
  'sendBeacon',
  'XMLHttpRequest',
  'WebSocket',
  'EventSource',
  'Worker',
  'SharedWorker',
  // Reserved words (ECMAScript, strict mode included): never identifiers.
  'await',
  'break',
  'case',
  'catch',
  'class',
  'const',
  'continue',
  'debugger',
  'default',
  'delete',
  'do',
  'else',
  'enum',
  'export',
  'extends',
  'false',
  'finally',
  'for',
  'function',
  'if',
  'implements',
  'import',
  'in',
  'instanceof',
  'interface',
  'let',
  'new',
  'null',
  'package',
  'private',
  'protected',
  'public',
  'return',
  'static',
  'super',
  'switch',
  'this',
  'throw',
  'true',
  'try',
  'typeof',
  'var',
  'void',
  'while',
  'with',
  'yield',
]);

/** Whether `name` is a JavaScript identifier or a dotted path of identifiers (the contract's grammar). */
export function isValidCallback(name: string): boolean {
  return CALLBACK.test(name);
}

/**
 * The first segment of a callback path that is reserved, or undefined: a Set
 * lookup per segment, and no allocation for a callback without a dot.
 */
export function reservedSegment(name: string): string | undefined {
  let start = 0;
  for (;;) {
    const dot = name.indexOf('.', start);
    const segment = dot === -1 ? (start === 0 ? name : name.slice(start)) : name.slice(start, dot);
    if (RESERVED_CALLBACK_SEGMENTS.has(segment)) return segment;
    if (dot === -1) return undefined;
    start = dot + 1;
  }
}

/** An allow pattern as --jsonp-callback gives it, anchored to match the whole callback. */
export function compileCallbackPattern(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

// The pattern of the configuration, compiled once: every request passes the
// same source string, so a request costs one string comparison, never a compile.
let patternSource = '';
let pattern: RegExp | undefined;

/** The compiled allow pattern for `source` ('' allows every identifier path), cached. */
export function callbackPattern(source: string): RegExp | undefined {
  if (source !== patternSource) {
    pattern = source === '' ? undefined : compileCallbackPattern(source);
    patternSource = source;
  }
  return pattern;
}

/** What JSON.stringify escapes (lone surrogates among the surrogates), and U+2028/9. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029\ud800-\udfff]/;

/**
 * JSON.stringify for text that is also embedded in script: U+2028 and U+2029
 * are legal in JSON strings but were line terminators in JavaScript before
 * ES2019, and are escaped so that older engines parse the body as well.
 */
export function scriptSafeJson(value: string): string {
  // Most messages hold nothing to escape, and quoting them costs half of
  // JSON.stringify, a call into the runtime (a tenth of a put's handler in a
  // profile). Escaped: '"', '\\', controls, U+2028/9 and surrogates, whose
  // lone halves JSON.stringify writes as escapes. One regular expression
  // scans a message sliced from a query faster than a charCodeAt() loop.
  return NEEDS_ESCAPE.test(value) ? escapedJson(value) : `"${value}"`;
}

function escapedJson(value: string): string {
  const json = JSON.stringify(value);
  return json.includes('\u2028') || json.includes('\u2029') ? json.replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029') : json;
}

/** `/**\/F(<json>);` The leading comment defeats content-sniffing tricks (Rosetta Flash). */
export function wrapJsonp(callback: string, json: string): string {
  return `/**/${callback}(${json});`;
}
