// Every test runs in Node: the Node platform (Dawn's WebGPU, the file system) is installed before any test file.
import '../src/platform/node.ts';
