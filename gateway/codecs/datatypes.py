"""The Open Inference Protocol's tensor datatypes: what routes.yaml's declared tensors are
checked against, without the codecs (and numpy) that convert them."""

DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BF16",
        "BYTES",
    }
)
