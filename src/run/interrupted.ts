// The one way a long run stops early on request (Ctrl-C, SIGTERM): it saves what it has, then throws Interrupted,
// which says where the saved state is and how to continue from it.
export class Interrupted extends Error {
  /**
   * @param message what was saved, e.g. "interrupted at step 300 of 700; checkpoint saved in DIR/checkpoint"
   * @param dir the run directory holding the saved state
   * @param resume how to continue, as a line for the user (a command, or "run the same command again")
   */
  constructor(
    message: string,
    readonly dir: string,
    readonly resume: string,
  ) {
    super(message);
    this.name = 'Interrupted';
  }

  /** The message and how to continue, for a terminal. */
  get advice(): string {
    return `${this.message}\n${this.resume}`;
  }
}

/** The continuation line of a run resumed with --resume DIR. */
export const resumeWith = (command: string, dir: string) => `continue with: loss-atlas ${command} --resume ${dir}`;

/** The continuation line of a run that resumes by being started again with the same flags (the grid jobs). */
export const RUN_AGAIN = 'run the same command again to continue';
