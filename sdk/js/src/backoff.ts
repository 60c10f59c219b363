/** Options of a Backoff. */
export interface BackoffOptions {
  /** First delay, in ms. */
  initialMs?: number;
  /** Ceiling, in ms. */
  maxMs?: number;
  /** Growth factor per attempt. */
  factor?: number;
  /** Fraction of the delay randomised, 0..1: the delay is d * (1 - jitter * r), r in [0, 1). */
  jitter?: number;
  /** Source of r in [0, 1); injectable for tests. Default Math.random. */
  random?: () => number;
}

/**
 * Exponential backoff with jitter for reconnects. Pure: the caller owns the
 * timers.
 */
export class Backoff {
  private attemptCount = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 500;
    this.maxMs = options.maxMs ?? 15_000;
    this.factor = options.factor ?? 2;
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.2));
    this.random = options.random ?? Math.random;
    if (this.initialMs < 0 || this.maxMs < this.initialMs || this.factor < 1) {
      throw new RangeError("invalid backoff options");
    }
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attemptCount;
  }

  /** The delay before the next attempt, in ms; grows until `maxMs`. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, this.attemptCount));
    this.attemptCount++;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  /** Call after a success: the next delay is `initialMs` again. */
  reset(): void {
    this.attemptCount = 0;
  }
}
