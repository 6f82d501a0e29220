"""What the shipped `evaluate` modules have in common: their MetricInfo, and the features of
label-index metrics. (Each module stays a file of its own: `evaluate.load` takes a folder.)"""

import datasets
import evaluate

LABEL_INDICES = datasets.Features({"predictions": datasets.Value("int32"),
                                   "references": datasets.Value("int32")})


def metric_info(description: str, inputs: str, features: datasets.Features,
                citation: str = "") -> evaluate.MetricInfo:
    return evaluate.MetricInfo(description=description, citation=citation,
                               inputs_description=inputs, features=features)
