/**
 * Turns command-line flags and environment variables into a validated Config.
 * Flags win over environment variables, which win over defaults. Invalid values
 * fail at startup with a TypeError naming the option, never later at runtime.
 */
import { parseArgs } from 'node:util';
import { type Config, OPTIONS, type OptionSpec, shownDefault } from './options.js';

export class ConfigError extends TypeError {
  readonly code = 'COMET_ERR_INVALID_OPTION';
}

export interface ParsedCommandLine {
  help: boolean;
  config: Config;
}

export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedCommandLine {
  const argOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const option of OPTIONS) argOptions[option.flag] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: argOptions, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}. See --help.`);
  }
  const config = {} as Record<keyof Config, string | number>;
  for (const option of OPTIONS) {
    const fromFlag = values[option.flag];
    const raw = typeof fromFlag === 'string' ? fromFlag : env[option.env];
    config[option.key] = raw === undefined ? defaultValue(option) : parseValue(option, raw, typeof fromFlag === 'string' ? `--${option.flag}` : option.env);
  }
  if (config.adminPort !== 0 && config.adminPort === config.port) {
    throw new ConfigError(`the admin port must differ from the public port, got ${config.port} for both`);
  }
  return { help: values.help === true, config: config as unknown as Config };
}

function defaultValue(option: OptionSpec): string | number {
  return typeof option.default === 'function' ? option.default() : option.default;
}

function parseValue(option: OptionSpec, raw: string, source: string): string | number {
  if (option.kind === 'int') {
    if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${source} must be a whole number, got ${JSON.stringify(raw)}`);
    const value = Number(raw.trim());
    const max = option.max ?? Number.MAX_SAFE_INTEGER;
    if (value < option.min || value > max) throw new ConfigError(`${source} must be between ${option.min} and ${max}, got ${value}`);
    return value;
  }
  if (option.choices && !option.choices.includes(raw)) {
    throw new ConfigError(`${source} must be one of ${option.choices.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  const problem = option.check?.(raw);
  if (problem) throw new ConfigError(`${source} ${problem}, got ${JSON.stringify(raw)}`);
  return raw;
}

export function helpText(): string {
  const lines = [
    'Usage: comet-server [options]',
    '',
    'A long-polling pub/sub server speaking the Simple Comet Protocol.',
    'Every option can also be set by the environment variable shown; flags win.',
    '',
    'Options:',
  ];
  for (const option of OPTIONS) {
    lines.push(`  --${option.flag} <value>`.padEnd(31) + ` ${option.env}`);
    lines.push(`      ${option.describe} (default: ${shownDefault(option)})`);
  }
  lines.push('  -h, --help'.padEnd(31) + ' Show this help and exit.');
  return lines.join('\n') + '\n';
}
