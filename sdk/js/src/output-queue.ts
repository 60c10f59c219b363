/**
 * The core's outputs in order, with deferred steps among them: a deferred
 * step runs only when the drain reaches it, and what it emits comes out
 * before anything queued after it. Objects released together are delivered
 * this way one by one, so an integrator that closes the peer from onFrame
 * stops the batch where it is.
 */
export class OutputQueue<O, D> {
  private items: ({ out: O } | { step: D })[] = [];
  private head = 0;
  private burst: O[] = [];
  private burstHead = 0;
  private inStep = false;

  constructor(private readonly run: (step: D) => void) {}

  /** Queues an output: after everything queued, or right after the output of the step running now. */
  push(out: O): void {
    if (this.inStep) this.burst.push(out);
    else this.items.push({ out });
  }

  /** Queues a step to run when the drain reaches it. */
  defer(step: D): void {
    this.items.push({ step });
  }

  /** The next output, running deferred steps on the way; null when nothing is left. */
  next(): O | null {
    for (;;) {
      if (this.burstHead < this.burst.length) return this.burst[this.burstHead++]!;
      if (this.burst.length > 0) {
        this.burst = [];
        this.burstHead = 0;
      }
      if (this.head >= this.items.length) {
        this.items = [];
        this.head = 0;
        return null;
      }
      const item = this.items[this.head++]!;
      if ("out" in item) return item.out;
      this.inStep = true;
      try {
        this.run(item.step);
      } finally {
        this.inStep = false;
      }
    }
  }
}
