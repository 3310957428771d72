#!/usr/bin/env node
/**
 * The `comet` command: publish, subscribe and sync from a shell, through the
 * client library only (comet-server/client), so that the tool behaves exactly
 * as an application using the library would: a subscription resumes after
 * failures without losing or repeating messages, and retries by itself.
 * `comet token` mints a token for a server with access control on.
 */
import { createClient } from '../client/index.js';
import { cometHelpText, parseCometArgs, UsageError, type CometCommand } from './comet-args.js';
import { describeError, formatBatch, missedNote } from './comet-output.js';
import { mintToken } from './token.js';

async function main(): Promise<number> {
  let command: CometCommand;
  try {
    command = parseCometArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`comet: ${err.message}. See comet --help.\n`);
    return 2;
  }
  if (command.name === 'help') {
    process.stdout.write(cometHelpText());
    return 0;
  }
  if (command.name === 'token') {
    process.stdout.write(`${mintToken(command)}\n`);
    return 0;
  }
  const client = createClient({ url: command.url, token: command.token, transport: command.name === 'sub' ? command.transport : 'fetch' });
  try {
    if (command.name === 'pub') process.stdout.write(`${await client.publish(command.channel, command.message)}\n`);
    else if (command.name === 'sync') process.stdout.write(`${await client.sync(command.channel)}\n`);
    else await subscribe(client, command);
    return 0;
  } catch (err) {
    process.stderr.write(`comet: ${describeError(err, command.url)}\n`);
    return 1;
  }
}

/** Runs until SIGINT or SIGTERM (resolves) or a refusal (rejects with it). */
async function subscribe(client: ReturnType<typeof createClient>, command: Extract<CometCommand, { name: 'sub' }>): Promise<void> {
  const { channel, json, url } = command;
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const subscription = client.subscribe(
    channel,
    (messages, info) => {
      if (info.missed && !json) process.stderr.write(missedNote(channel));
      process.stdout.write(formatBatch(channel, messages, info, json));
    },
    {
      time: command.time,
      signal: controller.signal,
      // A refusal ends the subscription and is reported once, by main.
      onError: (err) => {
        if (err.retryable) process.stderr.write(`comet: ${describeError(err, url)}; retrying\n`);
      },
    },
  );
  await subscription.done;
}

// A reader that went away (`comet sub news | head -1`) is the end of the job, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`comet: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
