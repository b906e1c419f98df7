"""Runs requests against an exported SavedModel the way TF Serving would, in a fresh
process: gRPC `PredictRequest` protos and REST JSON bodies are converted to tensors
(`tf.make_ndarray`, the signature's dtypes) and fed to the signatures. Writes the
outputs to an .npz file. Usage: serving_client.py SAVED_MODEL IMAGES.npy PNG OUT.npz"""

import base64
import json
import sys

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

saved_model, images_path, png_path, out = sys.argv[1:]
loaded = tf.saved_model.load(saved_model)
images = np.load(images_path)
results = {}

# gRPC: the client builds a PredictRequest; the server turns each TensorProto into a tensor.
request = predict_pb2.PredictRequest()
request.model_spec.name = "encnet"
request.model_spec.signature_name = "probabilities"
request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
signature = loaded.signatures[request.model_spec.signature_name]
inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
for key, value in signature(**inputs).items():
    results[f"grpc_{key}"] = value.numpy()

# REST, row format: {"instances": [...]}, converted with the signature's input dtype.
body = json.loads(json.dumps({"signature_name": "serving_default", "instances": images.tolist()}))
signature = loaded.signatures[body["signature_name"]]
spec = signature.structured_input_signature[1]["images"]
for key, value in signature(
    images=tf.constant(np.asarray(body["instances"]), dtype=spec.dtype)
).items():
    results[f"rest_{key}"] = value.numpy()

# REST with encoded bytes: {"instances": [{"b64": ...}]} for the string input.
with open(png_path, "rb") as f:
    body = json.loads(
        json.dumps(
            {
                "signature_name": "encoded",
                "instances": [{"b64": base64.b64encode(f.read()).decode()}],
            }
        )
    )
encoded = [base64.b64decode(item["b64"]) for item in body["instances"]]
for key, value in loaded.signatures["encoded"](encoded_images=tf.constant(encoded)).items():
    results[f"encoded_{key}"] = value.numpy()

# Requests the signatures must refuse: wrong dtype, rank and channel count.
errors = []
for bad in (images.astype(np.float32), images[0], images[..., :2]):
    try:
        loaded.signatures["serving_default"](images=tf.constant(bad))
        errors.append("accepted")
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as err:
        errors.append(str(err))
results["errors"] = np.array(errors)
with open(saved_model + "/assets/classes.json") as f:
    results["classes"] = np.array(json.load(f)["names"])
np.savez(out, **results)
