"""The lean gRPC front: V2 ``ModelInfer`` for the served model, without KServe's per-call work.

KServe's gRPC server spends most of a one-row call outside the model (README "Benchmarks"): its two
interceptors (a log line per call, and a handler rebuilt per call to map exceptions to status codes),
``InferRequest.from_grpc``, ``Model.__call__`` with its latency histograms, the generic V2 decoding and
``InferResponse.to_grpc``. This server is KServe's own (``kserve.ModelServer`` still starts and stops it, with
its port, thread pool, message-size options and servicer), with one change: ``ModelInfer`` first goes to
``model_infer`` here. When the request is the plain case (``Codec.decode_grpc``: the named features as typed
contents or raw_input_contents, nothing else) it is decoded straight into the codec's arrays, scored, and the
``ModelInferResponse`` built directly: the same message KServe sends (tests/unit/test_fastgrpc.py). Anything
else — another model, the model not ready, parameters, requested outputs, odd types or shapes, any input the
contract refuses — goes to KServe's servicer through KServe's interceptors unchanged, as does every other RPC,
so error answers stay KServe's own.
"""

import functools
import logging
import time
from concurrent import futures

import grpc
from grpc import aio
from kserve.logging import logger
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest
from prometheus_client import Counter

from inference.predictor.model import request_id_of

SERVICE = "inference.GRPCInferenceService"
MODEL_INFER = f"/{SERVICE}/ModelInfer"
GRPC_INFER = Counter(
    "mlcycle_grpc_infer_total",
    "gRPC ModelInfer calls by the path that answered: lean (fastgrpc) or kserve (KServe's servicer)",
    ["model", "path"],
)
access = logging.getLogger("mlcycle.access")


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str, invocation_metadata):
        self.method, self.invocation_metadata = method, invocation_metadata


class _Recorder:
    """Stands in for the server while KServe's generated code registers its servicer: keeps the handlers."""

    def __init__(self):
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.handlers.update(handlers)


class LeanServicer:
    def __init__(self, model, servicer: InferenceServicer, interceptors: tuple, access_log: bool = False):
        self.model, self.interceptors, self.access_log = model, interceptors, access_log
        self.exceptions = next(i for i in interceptors if isinstance(i, ExceptionToStatusInterceptor))
        recorder = _Recorder()
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, recorder)
        self.kserve = {f"/{SERVICE}/{name}": handler for name, handler in recorder.handlers.items()}
        self.lean_calls = GRPC_INFER.labels(model.name, "lean")
        self.kserve_calls = GRPC_INFER.labels(model.name, "kserve")

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """Every method of KServe's service: ModelInfer here first, the others straight to KServe's chain."""
        out = {}
        for method, handler in self.kserve.items():
            behaviour = self.model_infer if method == MODEL_INFER else functools.partial(self.via_kserve, method)
            out[method.rsplit("/", 1)[1]] = grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return out

    async def via_kserve(self, method: str, request, context):
        """What grpc.aio does with KServe's interceptors and servicer: the interceptor chain, then the handler."""
        handler = await _intercept(
            iter(self.interceptors), self.kserve.get, _CallDetails(method, context.invocation_metadata())
        )
        return await handler.unary_unary(request, context)

    async def model_infer(self, request, context):
        m = self.model
        start = time.perf_counter()
        codec = m.codec
        batch = None
        if m.ready and request.model_name == m.name and not m.fault_delay_ms:
            batch = codec.decode_grpc(request, m.inline_rows)
        if batch is None:
            self.kserve_calls.inc()
            return await self.via_kserve(MODEL_INFER, request, context)
        self.lean_calls.inc()
        try:
            scores, labels = m.score_decoded(batch, start)
        except Exception as e:  # KServe's mapping to a status (InferenceError: INVALID_ARGUMENT, else INTERNAL)
            await self.exceptions.handle_exception(e, request, context, MODEL_INFER)
            raise
        response = codec.encode_v2_grpc(request.id, m.name, scores, labels, m.bundle.classes, m.version)
        if m.payload_logger is not None:  # what KServe's path logs: the request as V2 JSON, the id from metadata
            payload = InferRequest.from_grpc(request)
            request_id = request_id_of(dict(context.invocation_metadata() or ()))
            body = None  # the response is logged only in mode "all": not built otherwise
            if m.payload_logger.mode == "all":
                body = codec.encode_v2_rest(request.id, m.name, scores, labels, m.bundle.classes, m.version)
            m.log_payload(payload, request_id, body)
        if self.access_log:
            access.info('%s "ModelInfer %s" OK %.3fms', context.peer(), m.name, (time.perf_counter() - start) * 1000)
        return response


async def _intercept(interceptors, lookup, details):
    interceptor = next(interceptors, None)
    if interceptor is None:
        return lookup(details.method)
    return await interceptor.intercept_service(functools.partial(_intercept, interceptors, lookup), details)


class LeanGRPCServer(GRPCServer):
    """KServe's GRPCServer (same port, thread pool, options, servicer, interceptors, stop) with the lean front."""

    def __init__(self, *args, model, access_log: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.model, self.access_log = model, access_log

    async def start(self, max_workers):
        """kserve 0.20's GRPCServer.start, the interceptors moved behind the lean front."""
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        interceptors = (LoggingInterceptor(), ExceptionToStatusInterceptor())
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        handlers = LeanServicer(self.model, servicer, interceptors, self.access_log).handlers()
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self._server.add_registered_method_handlers(SERVICE, handlers)
        listen_addr = f"[::]:{self._port}"
        self._server.add_insecure_port(listen_addr)
        logger.info(f"Starting gRPC server with {max_workers} workers")
        logger.info("Starting gRPC server on %s (lean ModelInfer front for %s)", listen_addr, self.model.name)
        await self._server.start()
        await self._server.wait_for_termination()


def install(model, access_log: bool = False) -> None:
    """Make ``kserve.ModelServer.start`` build the lean gRPC server for ``model`` instead of KServe's."""
    from kserve import model_server

    model_server.GRPCServer = functools.partial(LeanGRPCServer, model=model, access_log=access_log)
