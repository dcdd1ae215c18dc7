"""The wire between the checking process (the grader) and the notebook's process (the sandbox): plain data only.

A message is one frame: a 4-byte length, a JSON header, then the raw bytes of every array it carries (each an
8-byte length and the bytes). Values are ``None``, booleans, numbers, strings, lists, tuples, dicts, NumPy arrays
and scalars and torch tensors (raw bytes with their dtype and shape, and whether the tensor takes part in
autograd), the state of a NumPy or torch random generator, a library function named from :data:`LIBRARY_FUNCTIONS`,
and a handle for a function of the other side (a *callback*). Nothing is pickled and no object crosses: what
arrives is rebuilt from numbers by the receiving side, which trusts nothing else about it.

Gradients cross as data too. When a call's result depends, through autograd, on tensors the caller sent, the
receiver keeps that graph under a token; the caller attaches the result to its own tensors with
:class:`RemoteGraph`, whose ``backward`` sends the result's gradients and receives the inputs' gradients.

This file is copied into the sandbox beside the runner (it imports nothing from ``tools``); the grader imports it
as ``tools.grading.wire``.
"""
from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# What one frame may hold: the JSON header and all its arrays. The checks' largest array is a few MB.
HEADER_LIMIT = 16 * 1024 * 1024
FRAME_LIMIT = 256 * 1024 * 1024
STRING_LIMIT = 1024 * 1024
DEPTH_LIMIT = 32
ARRAY_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                          "float16", "float32", "float64", "complex64", "complex128"})
TORCH_DTYPES = {name: getattr(torch, name) for name in ARRAY_DTYPES if name not in ("uint16", "uint32", "uint64")}
# Library functions a check may hand to a student's function, sent by name (both sides have the library).
LIBRARY_FUNCTIONS = ("torch.sin", "torch.cos", "torch.square", "torch.exp", "torch.tanh", "torch.sigmoid",
                     "torch.relu", "numpy.sin", "numpy.cos", "numpy.exp", "numpy.square")
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class ProtocolError(BaseException):
    """A frame that is not a well-formed message of this protocol (or too large). A BaseException: a check's
    ``except Exception`` does not turn it into a verdict on the student's code."""


class Uncarriable(TypeError):
    """A value that is not plain data: it cannot be sent."""


class PeerGone(BaseException):
    """The other side closed the channel. A BaseException: a check's ``except Exception`` does not swallow it."""


class DeadlineReached(BaseException):
    """The run's time limit passed while waiting. A BaseException, like :class:`PeerGone`."""


def _library_function(name: str) -> Callable:
    module, _, attribute = name.rpartition(".")
    return getattr(torch if module == "torch" else np, attribute)


class Encoder:
    """Turns a value into a JSON-able header and a list of raw byte blobs. ``callbacks`` registers a callable of
    this side and returns its handle (None: callables cannot be sent); ``track_grad`` collects the tensors that
    take part in autograd, in order, so that a result's gradient can be sent back for them."""

    def __init__(self, callbacks: Callable[[Callable], int] | None = None, track_grad: bool = False,
                 identities: dict[int, int] | None = None, mark_requires_grad: bool = False) -> None:
        self.blobs: list[bytes] = []
        self.callbacks = callbacks
        self.track_grad = track_grad
        self.grad_leaves: list[torch.Tensor] = []
        self.identities = identities
        self.mark_requires_grad = mark_requires_grad
        self.sent: list[np.ndarray | torch.Tensor] = []  # the arrays and tensors encoded, in order

    def _blob(self, data: bytes) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def encode(self, value: Any, depth: int = 0) -> Any:
        if depth > DEPTH_LIMIT:
            raise Uncarriable("a value nested too deeply")
        if value is None or isinstance(value, (bool, str)):
            if isinstance(value, str) and len(value) > STRING_LIMIT:
                raise Uncarriable("a string longer than the wire carries")
            return value
        if type(value) is int or type(value) is float:
            return value
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if isinstance(value, np.ndarray):
            self.sent.append(value)
            return {"t": "ndarray", **self._array(value)}
        if isinstance(value, np.generic):
            return {"t": "npscalar", **self._array(np.asarray(value))}
        if isinstance(value, (list, tuple)):
            return {"t": type(value).__name__ if type(value) in (list, tuple) else "list",
                    "items": [self.encode(item, depth + 1) for item in value]}
        if isinstance(value, dict):
            return {"t": "dict", "items": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                                           for k, v in value.items()]}
        if isinstance(value, int):  # a subclass of int (bool was handled above)
            return int(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, np.random.Generator):
            state = value.bit_generator.state
            if state.get("bit_generator") not in BIT_GENERATORS:
                raise Uncarriable("a random generator of an unknown kind")
            return {"t": "np_generator", "state": state}
        if isinstance(value, torch.Generator):
            return {"t": "torch_generator", "blob": self._blob(value.get_state().numpy().tobytes())}
        for name in LIBRARY_FUNCTIONS:
            if value is _library_function(name):
                return {"t": "library", "name": name}
        if callable(value) and self.callbacks is not None:
            return {"t": "callback", "handle": self.callbacks(value)}
        raise Uncarriable(f"a {type(value).__name__} is not plain data (numbers, arrays, tensors, lists, dicts)")

    def _array(self, array: np.ndarray) -> dict:
        if array.dtype.name not in ARRAY_DTYPES:
            raise Uncarriable(f"an array of dtype {array.dtype} is not plain data")
        # tobytes() writes C order whatever the array's layout
        return {"dtype": array.dtype.name, "shape": list(array.shape), "blob": self._blob(array.tobytes())}

    def _tensor(self, tensor: torch.Tensor) -> dict:
        plain = torch.Tensor.detach(tensor).cpu()
        if plain.dtype == torch.bfloat16 or plain.is_complex() and plain.dtype not in (torch.complex64,
                                                                                        torch.complex128):
            raise Uncarriable(f"a tensor of dtype {plain.dtype} is not carried")
        record = {"t": "tensor", **self._array(plain.resolve_conj().resolve_neg().numpy())}
        self.sent.append(tensor)
        if self.mark_requires_grad and tensor.requires_grad:
            record["requires_grad"] = True
        if self.track_grad and tensor.requires_grad and torch.is_grad_enabled():
            record["grad_leaf"] = len(self.grad_leaves)
            self.grad_leaves.append(tensor)
        if self.identities is not None:
            record["identity"] = self.identities.setdefault(id(tensor), len(self.identities))
        return record


class Decoder:
    """Rebuilds values from a header and its blobs. ``callback`` makes a local stand-in for the other side's
    callable of a handle; tensors marked ``grad_leaf`` become leaves that require grad, collected in
    ``grad_leaves`` in the sender's order (``reuse`` returns an existing tensor for an identity, or None)."""

    def __init__(self, blobs: list[bytes], callback: Callable[[int], Callable] | None = None,
                 reuse: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> None:
        self.blobs = blobs
        self.callback = callback
        self.reuse = reuse
        self.grad_leaves: dict[int, torch.Tensor] = {}
        self.received: list[np.ndarray | torch.Tensor] = []  # the arrays and tensors decoded, in order
        self.grad_outputs: list[torch.Tensor] = []  # the tensors marked as depending on the call's inputs

    def _array(self, record: dict) -> np.ndarray:
        dtype, shape, blob = record.get("dtype"), record.get("shape"), record.get("blob")
        if dtype not in ARRAY_DTYPES or not isinstance(shape, list) or not isinstance(blob, int) \
                or not 0 <= blob < len(self.blobs) or len(shape) > 32 \
                or not all(type(n) is int and n >= 0 for n in shape):
            raise ProtocolError("a malformed array")
        data = self.blobs[blob]
        if math.prod(shape) * np.dtype(dtype).itemsize != len(data):
            raise ProtocolError("an array whose bytes do not match its shape")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()

    def decode(self, value: Any, depth: int = 0) -> Any:
        if depth > DEPTH_LIMIT:
            raise ProtocolError("a value nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if not isinstance(value, dict):
            raise ProtocolError("a malformed value")
        kind = value.get("t")
        if kind in ("list", "tuple"):
            items = value.get("items")
            if not isinstance(items, list):
                raise ProtocolError("a malformed list")
            decoded = [self.decode(item, depth + 1) for item in items]
            return decoded if kind == "list" else tuple(decoded)
        if kind == "dict":
            items = value.get("items")
            if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
                raise ProtocolError("a malformed dict")
            result = {}
            for key, item in items:
                key = self.decode(key, depth + 1)
                if not isinstance(key, (str, int, float, bool, type(None), tuple)):
                    raise ProtocolError("a dict key that is not a plain value")
                result[key] = self.decode(item, depth + 1)
            return result
        if kind == "ndarray":
            array = self._array(value)
            self.received.append(array)
            return array
        if kind == "npscalar":
            array = self._array(value)
            if array.shape != ():
                raise ProtocolError("a NumPy scalar with a shape")
            return array[()]
        if kind == "tensor":
            return self._tensor(value)
        if kind == "np_generator":
            state = value.get("state")
            if not isinstance(state, dict) or state.get("bit_generator") not in BIT_GENERATORS:
                raise ProtocolError("a malformed random generator")
            bit_generator = getattr(np.random, state["bit_generator"])()
            try:
                bit_generator.state = state
            except (TypeError, ValueError, KeyError) as error:
                raise ProtocolError("a malformed random generator state") from error
            return np.random.Generator(bit_generator)
        if kind == "torch_generator":
            blob = value.get("blob")
            if not isinstance(blob, int) or not 0 <= blob < len(self.blobs):
                raise ProtocolError("a malformed torch generator")
            generator = torch.Generator()
            try:
                generator.set_state(torch.frombuffer(bytearray(self.blobs[blob]), dtype=torch.uint8))
            except (RuntimeError, ValueError) as error:
                raise ProtocolError("a malformed torch generator state") from error
            return generator
        if kind == "library" and value.get("name") in LIBRARY_FUNCTIONS:
            return _library_function(value["name"])
        if kind == "callback" and self.callback is not None and isinstance(value.get("handle"), int):
            return self.callback(value["handle"])
        raise ProtocolError(f"a value of unknown kind {str(kind)[:40]!r}")

    def _tensor(self, record: dict) -> torch.Tensor:
        array = self._array(record)
        tensor = torch.from_numpy(array) if array.dtype.name in TORCH_DTYPES else torch.from_numpy(
            array.astype(np.int64))
        identity = record.get("identity")
        if self.reuse is not None and type(identity) is int:
            tensor = self.reuse(identity, tensor)
        self.received.append(tensor)
        if record.get("grad_out") is True and tensor.is_floating_point():
            tensor.requires_grad_(True)
            self.grad_outputs.append(tensor)
        elif record.get("requires_grad") is True and tensor.is_floating_point() and not tensor.requires_grad:
            tensor.requires_grad_(True)  # the sender's tensor takes part in autograd: so does this one
        leaf = record.get("grad_leaf")
        if type(leaf) is int:
            if not tensor.is_floating_point() and not tensor.is_complex():
                raise ProtocolError("an integer tensor marked for gradients")
            if not tensor.requires_grad:
                tensor.requires_grad_(True)
            self.grad_leaves[leaf] = tensor
        return tensor


def tensors_in(value: Any, depth: int = 0) -> list[torch.Tensor]:
    """The tensors in a (nested) value, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if depth < DEPTH_LIMIT and isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_in(item, depth + 1)]
    if depth < DEPTH_LIMIT and isinstance(value, dict):
        return [t for item in value.values() for t in tensors_in(item, depth + 1)]
    return []


def replace_tensors(value: Any, replacements: dict[int, torch.Tensor], depth: int = 0) -> Any:
    """``value`` with each tensor whose ``id`` is a key replaced by its replacement."""
    if isinstance(value, torch.Tensor):
        return replacements.get(id(value), value)
    if depth < DEPTH_LIMIT and isinstance(value, (list, tuple)):
        items = [replace_tensors(item, replacements, depth + 1) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if depth < DEPTH_LIMIT and isinstance(value, dict):
        return {key: replace_tensors(item, replacements, depth + 1) for key, item in value.items()}
    return value


class RemoteGraph(torch.autograd.Function):
    """Attaches tensors computed on the other side to the local tensors they were computed from: ``backward``
    asks the other side (``pull(token, output_gradients)``) for the inputs' gradients, and writes into the inputs
    what the other side's backward wrote into its copies of them (an in-place change, as in one process)."""

    @staticmethod
    def forward(ctx: Any, pull: Callable, token: int, n_inputs: int, *tensors: torch.Tensor) -> Any:
        ctx.pull, ctx.token, ctx.n_inputs = pull, token, n_inputs
        ctx.input_meta = [(t.shape, t.dtype) for t in tensors[:n_inputs]]
        ctx.inputs = tensors[:n_inputs]
        return tuple(t.detach().clone() for t in tensors[n_inputs:])

    @staticmethod
    def backward(ctx: Any, *output_gradients: torch.Tensor) -> Any:
        gradients, mutated = ctx.pull(ctx.token, list(output_gradients))
        mirror_mutations(list(ctx.inputs), mutated)
        result = []
        for (shape, dtype), gradient in zip(ctx.input_meta, gradients, strict=True):
            if gradient is None:
                result.append(None)
            elif not isinstance(gradient, torch.Tensor) or gradient.shape != shape:
                raise ProtocolError("a gradient of the wrong shape")
            else:
                result.append(gradient.to(dtype))
        return (None, None, None, *result, *([None] * (len(output_gradients))))


def mirror_mutations(originals: list[np.ndarray | torch.Tensor], mutated: Any) -> None:
    """Write into ``originals`` (the arrays and tensors sent, in order) the new values the other side reports for
    those it changed in place (``mutated``: ``[index, value]`` pairs), so that a change the called code makes to
    its arguments is seen by the caller as in one process; a malformed report is refused."""
    if not isinstance(mutated, list):
        raise ProtocolError("a malformed report of changed arguments")
    for pair in mutated:
        if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) is int and 0 <= pair[0] < len(originals)):
            raise ProtocolError("a malformed report of changed arguments")
        original, value = originals[pair[0]], pair[1]
        if not isinstance(value, (np.ndarray, torch.Tensor)) or tuple(value.shape) != tuple(original.shape):
            raise ProtocolError("a changed argument of another shape")
        if isinstance(original, np.ndarray):
            if original.flags.writeable:
                original[...] = value.detach().numpy() if isinstance(value, torch.Tensor) else value
        else:
            with torch.no_grad():
                original.copy_(torch.as_tensor(value).to(original.dtype))


def changed_in_place(received: list[np.ndarray | torch.Tensor], before: list[bytes]) -> list[list]:
    """``[index, value]`` for each received array or tensor whose bytes differ from ``before``."""
    return [[index, value.detach() if isinstance(value, torch.Tensor) else value]
            for index, (value, then) in enumerate(zip(received, before, strict=True)) if _bytes_of(value) != then]


def _bytes_of(value: np.ndarray | torch.Tensor) -> bytes:
    if isinstance(value, torch.Tensor):
        value = torch.Tensor.detach(value).cpu().resolve_conj().resolve_neg().numpy()
    return value.tobytes()


def attach(value: Any, inputs: list[torch.Tensor], pull: Callable, token: int, outputs: list[torch.Tensor]) -> Any:
    """``value`` with ``outputs`` (its tensors that depend on the call's inputs) attached to ``inputs`` through
    :class:`RemoteGraph`."""
    if not outputs or not inputs:
        return value
    for output in outputs:
        output.requires_grad_(False)
    attached = RemoteGraph.apply(pull, token, len(inputs), *inputs, *outputs)
    return replace_tensors(value, {id(old): new for old, new in zip(outputs, attached, strict=True)})


class Channel:
    """Frames over two file descriptors: ``read_fd`` and ``write_fd``. ``deadline`` (a ``time.monotonic`` time,
    or None) bounds every wait: past it, :class:`DeadlineReached`."""

    def __init__(self, read_fd: int, write_fd: int, deadline: float | None = None) -> None:
        self.read_fd, self.write_fd, self.deadline = read_fd, write_fd, deadline
        self.buffer = bytearray()

    def _wait(self, fd: int, for_writing: bool) -> None:
        if self.deadline is None:
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineReached
        ready = select.select([], [fd], [], remaining) if for_writing else select.select([fd], [], [], remaining)
        if not any(ready):
            raise DeadlineReached

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._wait(self.read_fd, False)
            try:
                chunk = os.read(self.read_fd, max(65536, min(size - len(self.buffer), 1 << 22)))
            except BlockingIOError:
                continue
            if not chunk:
                raise PeerGone
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def receive(self) -> tuple[dict, list[bytes]]:
        """The next message: its header (a dict) and its blobs."""
        (length,) = struct.unpack("!I", self._read_exactly(4))
        if length > HEADER_LIMIT:
            raise ProtocolError("a header larger than the limit")
        try:
            header = json.loads(self._read_exactly(length))
        except (ValueError, RecursionError) as error:
            raise ProtocolError("a header that is not JSON") from error
        if not isinstance(header, dict) or not isinstance(header.get("blobs", 0), int):
            raise ProtocolError("a header that is not a message")
        blobs, total = [], 0
        for _ in range(min(header.get("blobs", 0), 1 << 20)):
            (size,) = struct.unpack("!Q", self._read_exactly(8))
            total += size
            if total > FRAME_LIMIT:
                raise ProtocolError("a message larger than the limit")
            blobs.append(self._read_exactly(size))
        return header, blobs

    def send(self, header: dict, blobs: list[bytes] = ()) -> None:
        payload = json.dumps({**header, "blobs": len(blobs)}).encode()
        parts = [struct.pack("!I", len(payload)), payload]
        for blob in blobs:
            parts += [struct.pack("!Q", len(blob)), blob]
        data = memoryview(b"".join(parts))
        while data:
            self._wait(self.write_fd, True)
            try:
                written = os.write(self.write_fd, data[: 1 << 16] if self.deadline is not None else data)
            except BlockingIOError:
                continue
            except BrokenPipeError as error:
                raise PeerGone from error
            data = data[written:]


class Peer:
    """One side of a call protocol over a :class:`Channel`. Either side may call the other (``call``) and, while
    it waits for the answer, serves the other's requests: a call of one of its functions (``resolve`` names it
    from the request: a name in the notebook, or a callback handle), or the gradients of an earlier result.
    ``describe`` turns an exception of a served call into the fields of a "raise" answer; ``raised`` turns such
    an answer back into an exception to raise on the calling side."""

    def __init__(self, channel: Channel, resolve: Callable[[dict], Callable],
                 describe: Callable[[BaseException], dict], raised: Callable[[dict], BaseException]) -> None:
        self.channel, self.resolve, self.describe, self.raised = channel, resolve, describe, raised
        self.callbacks: list[Callable] = []
        self.graphs: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self.identities: dict[int, int] = {}  # id of a local tensor sent -> its identity on the wire
        self.kept: list[torch.Tensor] = []  # those tensors, kept alive so that no id is reused
        self.received: dict[int, torch.Tensor] = {}  # identity on the wire -> the tensor rebuilt for it

    def reset(self) -> None:
        """Forget the graphs, callbacks and tensor identities of the calls so far (at the end of a check)."""
        self.callbacks.clear()
        self.graphs.clear()
        self.identities.clear()
        self.kept.clear()
        self.received.clear()

    def _register(self, function: Callable) -> int:
        self.callbacks.append(function)
        return len(self.callbacks) - 1

    def _reuse(self, identity: int, fresh: torch.Tensor) -> torch.Tensor:
        """The tensor rebuilt earlier for the same sender's tensor (its values refreshed), so that state the
        receiver's code leaves on it (``.grad``) persists across calls as it would in one process."""
        known = self.received.get(identity)
        if known is None or known.shape != fresh.shape or known.dtype != fresh.dtype:
            self.received[identity] = fresh
            return fresh
        # through .data, as gradcheck perturbs its inputs: new values are not an in-place operation of the graph
        known.data.copy_(fresh)
        return known

    def _stand_in(self, handle: int) -> Callable:
        def remote_function(*args: Any, **kwargs: Any) -> Any:
            return self.call({"op": "call", "handle": handle}, args, kwargs)
        return remote_function

    def _pull(self, token: int, output_gradients: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        encoder = Encoder()
        grads = encoder.encode([None if g is None else g.detach() for g in output_gradients])
        self.channel.send({"op": "backward", "token": token, "grads": grads}, encoder.blobs)
        value, header = self._wait(with_header=True)
        if not isinstance(value, list):
            raise ProtocolError("gradients that are not a list")
        return value, header["mutated"]

    def call(self, request: dict, args: tuple, kwargs: dict) -> Any:
        """Call the other side's function named in ``request`` with ``args`` and ``kwargs``; its result, attached
        to the tensors sent when it depends on them through autograd."""
        encoder = Encoder(self._register, track_grad=True, identities=self.identities)
        encoded_args, encoded_kwargs = encoder.encode(tuple(args)), encoder.encode(dict(kwargs))
        sent = [t for t in tensors_in((args, kwargs))]
        self.kept += sent
        self.channel.send({**request, "args": encoded_args, "kwargs": encoded_kwargs,
                           "grad_enabled": torch.is_grad_enabled()}, encoder.blobs)
        value, header = self._wait(with_header=True)
        mirror_mutations(encoder.sent, header["mutated"])
        for leaf, gradient in zip(encoder.grad_leaves, header.get("leaf_grads") or [], strict=False):
            if isinstance(gradient, torch.Tensor) and gradient.shape == leaf.shape and leaf.is_leaf:
                leaf.grad = gradient.to(leaf.dtype)
        token = header.get("token")
        if type(token) is int and encoder.grad_leaves and torch.is_grad_enabled():
            return attach(value, encoder.grad_leaves, self._pull, token, header["grad_outputs"])
        return value

    def _wait(self, with_header: bool = False) -> Any:
        """Serve the other side's requests until the answer to ours comes; return its value (and header)."""
        while True:
            header, blobs = self.channel.receive()
            op = header.get("op")
            if op == "return":
                decoder = Decoder(blobs)
                value = decoder.decode(header.get("value"))
                if with_header:
                    grad_outputs = list(decoder.grad_outputs)
                    header = {**header, "leaf_grads": decoder.decode(header.get("leaf_grads")),
                              "mutated": decoder.decode(header.get("mutated", [])), "grad_outputs": grad_outputs}
                    return value, header
                return value
            if op == "raise":
                raise self.raised(header)
            self.serve(header, blobs)

    def serve(self, header: dict, blobs: list[bytes]) -> None:
        """Answer one request of the other side: a call, or the gradients of an earlier result."""
        op = header.get("op")
        if op == "backward":
            self._answer_backward(header, blobs)
        elif op == "call":
            self._answer_call(header, blobs)
        else:
            raise ProtocolError(f"an unexpected message {str(op)[:40]!r}")

    def _answer_call(self, header: dict, blobs: list[bytes]) -> None:
        decoder = Decoder(blobs, self._stand_in, self._reuse)
        args, kwargs = decoder.decode(header.get("args")), decoder.decode(header.get("kwargs"))
        if not isinstance(args, tuple) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ProtocolError("a call without arguments")
        leaves = [decoder.grad_leaves[i] for i in sorted(decoder.grad_leaves)]
        before = [_bytes_of(value) for value in decoder.received]
        try:
            handle = header.get("handle")
            if type(handle) is int:
                if not 0 <= handle < len(self.callbacks):
                    raise ProtocolError("a call of an unknown function")
                function = self.callbacks[handle]
            else:
                function = self.resolve(header)
            with torch.set_grad_enabled(bool(header.get("grad_enabled"))):
                value = function(*args, **kwargs)
            encoder = Encoder(mark_requires_grad=True)
            outputs = [t for t in tensors_in(value) if t.requires_grad]
            encoded = encoder.encode(value)
            leaf_grads = encoder.encode([leaf.grad.detach() if leaf.grad is not None else None for leaf in leaves])
            mutated = encoder.encode(changed_in_place(decoder.received, before))
        except Exception as error:  # noqa: BLE001  (whatever the called code raises is the caller's to judge)
            self.channel.send({"op": "raise", **self.describe(error)})
            return
        answer: dict[str, Any] = {"op": "return", "value": encoded, "leaf_grads": leaf_grads, "mutated": mutated}
        if outputs and leaves:
            token = len(self.graphs)
            self.graphs[token] = (leaves, outputs, [_bytes_of(leaf) for leaf in leaves])
            answer["token"] = token
            _mark_outputs(answer["value"], [id(t) for t in tensors_in(value)], {id(t) for t in outputs})
        self.channel.send(answer, encoder.blobs)

    def _answer_backward(self, header: dict, blobs: list[bytes]) -> None:
        graph = self.graphs.get(header.get("token")) if type(header.get("token")) is int else None
        grads = Decoder(blobs).decode(header.get("grads"))
        if graph is None or not isinstance(grads, list) or len(grads) != len(graph[1]):
            raise ProtocolError("gradients for an unknown result")
        leaves, outputs, before = graph
        pairs = [(o, g) for o, g in zip(outputs, grads, strict=True)
                 if isinstance(g, torch.Tensor) and g.shape == o.shape]
        try:
            if pairs:
                got = torch.autograd.grad([o for o, _ in pairs], leaves, [g.to(o.dtype) for o, g in pairs],
                                          retain_graph=True, allow_unused=True)
            else:
                got = [None] * len(leaves)
            encoder = Encoder()
            encoded = encoder.encode([None if g is None else g.detach() for g in got])
            changed = changed_in_place(leaves, before)
            mutated = encoder.encode(changed)
        except Exception as error:  # noqa: BLE001
            self.channel.send({"op": "raise", **self.describe(error)})
            return
        for index, value in changed:
            before[index] = _bytes_of(value)
        self.channel.send({"op": "return", "value": encoded, "mutated": mutated}, encoder.blobs)


def _mark_outputs(encoded: Any, order: list[int], differentiable: set[int], position: list[int] | None = None) -> None:
    """Mark, in an encoded value, the tensors that depend on the call's inputs (``"grad_out": true``)."""
    position = [0] if position is None else position
    if isinstance(encoded, dict):
        if encoded.get("t") == "tensor":
            if order[position[0]] in differentiable:
                encoded["grad_out"] = True
            position[0] += 1
            return
        for item in encoded.get("items", []):
            if isinstance(item, list):  # a dict's [key, value]
                for part in item:
                    _mark_outputs(part, order, differentiable, position)
            else:
                _mark_outputs(item, order, differentiable, position)
