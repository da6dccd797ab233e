"""What both halves of the lesson-3 benchmark compute the same way (no coursekit or fastai import: both venvs load it)."""
import xml.etree.ElementTree as ET


def planet_metrics(probs, targs, thresh:float=0.2, beta:float=2., eps:float=1e-9) -> dict:
    "accuracy_thresh and fbeta (per image, averaged) of the probabilities `probs` against the 0/1 `targs`."
    pred, t = (probs > thresh).float(), targs.float()
    tp = (pred*t).sum(1)
    prec, rec = tp/(pred.sum(1) + eps), tp/(t.sum(1) + eps)
    return {'fbeta': float(((1 + beta**2)*prec*rec/(beta**2*prec + rec + eps)).mean()), 'acc_thresh': float((pred == t).float().mean())}


def head_ctr(xml_file) -> tuple:
    "The centre (row, column) of the head box in `xml_file`, in pixels."
    box = ET.parse(xml_file).find('object/bndbox')
    x0, y0, x1, y1 = (float(box.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
    return (y0 + y1)/2, (x0 + x1)/2


def ref_point(img_size:tuple, ctr:tuple, size=(120, 160)) -> list:
    "The point `ctr` (row, column) of an image of `img_size` (height, width) squished to `size`, in coursekit's [-1, 1]."
    return [((c + 0.5)*n/o - 0.5)/((n - 1)/2) - 1 for c, o, n in zip(ctr, img_size, size)]
