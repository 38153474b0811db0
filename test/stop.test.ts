// Ctrl-C handling of long runs: a signal relayed twice by npm / npx / tsx counts once; a later one quits.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { REPEAT_MS, stopOnSignal } from '../src/run/stop.ts';

afterEach(() => vi.restoreAllMocks());

describe('stopOnSignal', () => {
  it('stops at the first signal, ignores a repeat within REPEAT_MS, quits on a later one', () => {
    let t = 1000;
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const sig = stopOnSignal('stopping', ['SIGUSR2'], () => t);
    expect(sig.stopped()).toBe(false);
    process.emit('SIGUSR2', 'SIGUSR2');
    expect(sig.stopped()).toBe(true);
    t += REPEAT_MS - 100;
    process.emit('SIGUSR2', 'SIGUSR2');
    expect(exit).not.toHaveBeenCalled();
    t += 200;
    process.emit('SIGUSR2', 'SIGUSR2');
    expect(exit).toHaveBeenCalledWith(130);
    sig.dispose();
    expect(process.listenerCount('SIGUSR2')).toBe(0);
  });
});
