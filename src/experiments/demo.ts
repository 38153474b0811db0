export async function runDemo(..._a: unknown[]): Promise<number> { return 0; }
