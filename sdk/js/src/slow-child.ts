/**
 * When a child that does not drain its DataChannel is dropped. Pure: the
 * buffered amount and the time are passed in.
 */

/** The bounds of a child's DataChannel buffer. */
export interface SlowChildLimits {
  /** Above this the child is over. */
  slowChildBytes: number;
  /** Over for this long, it is dropped. */
  slowChildMs: number;
  /** While over, passing this is dropped at once. */
  maxChildBufferedBytes: number;
}

/** What the verdict reads and keeps of one child. */
export interface ChildBuffer {
  /** Its bufferedAmount. */
  buffered: number;
  /** Since when it has been over `slowChildBytes`, or null; kept up to date by `isSlow`. */
  overSince: number | null;
}

/**
 * Whether `c` is to be dropped at `now` before `adding` more bytes go to
 * it: over `slowChildBytes` for `slowChildMs`, or, while over, it would
 * pass `maxChildBufferedBytes`. Records since when it is over.
 */
export function isSlow(c: ChildBuffer, adding: number, now: number, limits: SlowChildLimits): boolean {
  if (c.buffered <= limits.slowChildBytes) {
    c.overSince = null;
    return false;
  }
  c.overSince ??= now;
  return now - c.overSince >= limits.slowChildMs || c.buffered + adding > limits.maxChildBufferedBytes;
}
