// The data set a model takes: CIFAR-10 for colour models (the zoo's cifar net, an ONNX graph on 3 channels),
// Fashion-MNIST for the rest, in an ONNX graph's own image size; a --data value that names npy arrays or an image
// folder is read as such whatever the model.
import { cifar10Dir } from '../data/cifar10.ts';
import { loadSplits } from '../data/datasets.ts';
import { fashionMnistDir } from '../data/fashion-mnist.ts';
import { isOnnxPath } from './onnx.ts';
import { colourModel, modelSpec } from './zoo.ts';

/** Both splits of the data set `model` (a zoo name or an ONNX file) takes, from `dataDir` (--data) or its default. */
export function modelData(model: string, dataDir: string | undefined) {
  const shape = isOnnxPath(model) ? modelSpec(model).input : undefined;
  const cifar = colourModel(model);
  return loadSplits(cifar ? 'cifar10' : 'fashion-mnist', cifar ? cifar10Dir(dataDir) : fashionMnistDir(dataDir), {
    shape,
  });
}
