/**
 * JSONP safety. A callback name is script that runs in the page that loaded
 * it, so only plain identifier paths are accepted (no calls, brackets or
 * operators), and the JSON placed inside must also be valid script text.
 */

const CALLBACK = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

export function isValidCallback(name: string): boolean {
  return CALLBACK.test(name);
}

/**
 * JSON.stringify for text that is also embedded in script: U+2028 and U+2029
 * are legal in JSON strings but were line terminators in JavaScript before
 * ES2019, and are escaped so that older engines parse the body as well.
 */
export function scriptSafeJson(value: string): string {
  const json = JSON.stringify(value);
  return /[\u2028\u2029]/.test(json) ? json.replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029') : json;
}

/** `/**\/F(<json>);` The leading comment defeats content-sniffing tricks (Rosetta Flash). */
export function wrapJsonp(callback: string, json: string): string {
  return `/**/${callback}(${json});`;
}
