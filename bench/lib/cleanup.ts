// Resources the benchmark must give back even when it fails or is interrupted: the child server, the
// temporary databases and data directories. Released in reverse order of acquisition.

export class Cleanup {
  private readonly steps: { label: string; run: () => Promise<void> | void }[] = [];

  add(label: string, run: () => Promise<void> | void): void {
    this.steps.push({ label, run });
  }

  /** Runs (and forgets) every step; a failing step is reported and does not stop the others. */
  async runAll(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.run();
      } catch (error) {
        process.stderr.write(`cleanup: ${step.label} failed: ${String(error)}\n`);
      }
    }
  }

  /** Ctrl-C still drops the database and stops the child. */
  onInterrupt(): () => void {
    const handler = () => {
      process.stderr.write('\ninterrupted; cleaning up\n');
      this.runAll().finally(() => process.exit(130));
    };
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  }
}
