// Resources the benchmark must give back even when it fails or is interrupted: the child server, the
// temporary databases and data directories. Released in reverse order of acquisition.

export class Cleanup {
  private readonly steps: { label: string; run: () => Promise<void> | void }[] = [];
  private running: Promise<void> | null = null;

  add(label: string, run: () => Promise<void> | void): void {
    this.steps.push({ label, run });
  }

  /**
   * Runs (and forgets) every step; a failing step is reported and does not stop the others. A second call
   * while one runs (Ctrl-C during the normal cleanup) joins it instead of racing it.
   */
  runAll(): Promise<void> {
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async drain(): Promise<void> {
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
    let interrupted = false;
    // `on`, not `once`: a second signal (tsx forwards Ctrl-C again) must not kill the cleanup half-way.
    const handler = () => {
      if (interrupted) return;
      interrupted = true;
      process.stderr.write('\ninterrupted; cleaning up\n');
      this.runAll().finally(() => process.exit(130));
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  }
}
