/**
 * What threads say to each other. Worker threads form a full mesh of
 * MessagePorts; every port carries batches, each batch one flat array of
 * operations laid end to end: [op, ...fields, op, ...fields], structured-
 * cloned (batched structured clone measured faster than msgpackr and than
 * Piscina: see BENCHMARKS.md).
 *
 * Ordering: a port delivers batches in order and a batch is read front to
 * back, so everything one thread sends another arrives in the order it was
 * sent. The owner of a channel relies on this: a reply to a get and the news
 * of a later message on that channel can never overtake each other.
 */

/** Requests, to the channel's owner. */
export const OP_PUT = 1; //     [OP_PUT, requestId, channel, body]
export const OP_SYNC = 2; //    [OP_SYNC, requestId, channel]
export const OP_GET = 3; //     [OP_GET, requestId, channel, since, wait (0|1)]
export const OP_UNWATCH = 4; // [OP_UNWATCH, channel]
/** Replies, to the requesting thread. */
export const OP_TIME = 5; //    [OP_TIME, requestId, time]
export const OP_ANSWER = 6; //  [OP_ANSWER, requestId, time, bodies[], missed (0|1), watching (0|1)]
export const OP_PARKED = 7; //  [OP_PARKED, requestId, cursor]
export const OP_FAIL = 8; //    [OP_FAIL, requestId, error code, message]
/** From the owner to every thread with gets waiting on the channel. */
export const OP_NEWS = 9; //    [OP_NEWS, channel, time, body]
/** Fault injection (tests only): the receiving thread throws. */
export const OP_CRASH = 10; //  [OP_CRASH]
/** From the owner to every thread with gets waiting on the channel: messages may have been lost, read again. */
export const OP_GAP = 11; //    [OP_GAP, channel]

export type Batch = (number | string | string[])[];
