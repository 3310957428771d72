/**
 * Redis key names of a channel. All of a channel's keys share one hash tag,
 * so they live in one slot of a Redis Cluster and one script can touch them
 * all. The tag is the channel id with `%` and `}` percent-encoded: a `}` in
 * the id would otherwise end the tag early, and the encoding is one-to-one, so
 * two channels never share keys. The prefix holds no braces (checked when the
 * options are read), so the first `{` of a key is always the tag's.
 */
export interface ChannelKeys {
  stream: string;
  meta: string;
  /** The pub/sub channel announcing new messages. */
  notify: string;
}

export function channelKeys(prefix: string, channel: string): ChannelKeys {
  const base = `${prefix}{${hashTag(channel)}}`;
  return { stream: `${base}:s`, meta: `${base}:m`, notify: `${base}:n` };
}

function hashTag(channel: string): string {
  return channel.replace(/[%}]/g, (c) => (c === '%' ? '%25' : '%7D'));
}
