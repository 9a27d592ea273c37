"""Module calls of an exported program, read from its graph.

``torch.export`` inlines every submodule call: the GraphModule that ``ExportedProgram.module()``
returns runs aten ops itself, so no submodule's hook fires (its rows would be missing and its
modules listed as never called). Each node of the graph remembers the module calls it ran in
(``meta["nn_module_stack"]``); running the graph node by node opens and closes those calls, so
every op is attributed as under hooks, and a call's inputs and outputs are the tensors that cross
its border.
"""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from torchscope._summary.calls import Call, CallTracker
from torchscope._summary.data import specs

_RUN = ("call_function", "call_method")


def is_exported_graph(model: nn.Module) -> bool:
    """Whether ``model`` is a graph from ``torch.export`` (its nodes name the module calls they ran in).

    >>> is_exported_graph(nn.Linear(2, 2))
    False
    """
    if not isinstance(model, fx.GraphModule):
        return False
    return any(n.op in _RUN and n.meta.get("nn_module_stack") for n in model.graph.nodes)


def _short_type(kind: Any) -> str:
    # 'torch.nn.modules.conv.Conv2d' (or the class itself in older torch) -> 'Conv2d'
    name = kind.__name__ if isinstance(kind, type) else str(kind)
    return name.rsplit(".", 1)[-1]


def _stack(node: fx.Node, root: bool = False) -> list[tuple[str, str, str]]:
    """(call key, module path, type) of the calls ``node`` ran in, outermost first; the model's own
    call only with ``root``."""
    stack = node.meta.get("nn_module_stack") or {}
    return [(key, path, _short_type(kind)) for key, (path, kind) in stack.items() if path or root]


class GraphTracker(CallTracker):
    """:class:`CallTracker`'s calls for an exported graph, opened and closed by the graph's nodes.

    No hook is registered: :meth:`run` runs the graph through :class:`torch.fx.Interpreter`,
    syncing the stack of calls before each op, and the MAC counter's ``on_op`` attributes every op
    to the calls on the stack, as for an eager model.
    """

    def __init__(self, model: fx.GraphModule, named_modules: list[tuple[str, nn.Module]] | None = None) -> None:
        if named_modules is None:
            named_modules = list(model.named_modules(remove_duplicate=False))
        super().__init__(model, named_modules)
        self.graph_module = model
        self.graph = model.graph
        # every name of a module: a shared module's call under its second name is its second call.
        # Export keeps tied tensors tied but makes a module shared under two names two modules:
        # two modules, neither inside the other, holding the very same tensors are one again.
        by_path: dict[str, int] = {}
        holding: dict[tuple[type, tuple[int, ...]], tuple[int, str]] = {}
        for name, module in named_modules:
            mid = id(module)
            tensors = tuple(id(t) for t in (*module.parameters(), *module.buffers()))
            if tensors:
                first, first_name = holding.setdefault((type(module), tensors), (mid, name))
                if not (first_name == "" or name.startswith(first_name + ".")):
                    mid = first
            by_path[name] = mid
            if mid != id(module):
                self.modules.pop(id(module), None)
                self.names.pop(id(module), None)
        self._members: dict[str, list[fx.Node]] = {}  # graph call key -> its nodes, in order
        self._key_of: dict[str, int] = {}
        paths: set[str] = {""}
        for node in self.graph.nodes:
            if node.op not in _RUN:
                continue
            for key, path, kind in _stack(node, root=True):
                if not path:  # the exported model's own class
                    self._types[id(model)] = kind
                    continue
                self._members.setdefault(key, []).append(node)
                paths.add(path)
                module_key = by_path.get(path)
                if module_key is None:  # a module without tensors: not kept in the graph module
                    module_key = by_path[path] = -len(by_path) - 1
                    self.names[module_key] = path
                self._types[module_key] = kind
                self._key_of[key] = module_key
        # modules the graph never ran in and that hold no tensors are export's own (_guards_fn)
        for module_key, module in list(self.modules.items()):
            name = self.names[module_key]
            if name not in paths and next(iter(module.parameters()), None) is None:
                if next(iter(module.buffers()), None) is None:
                    del self.modules[module_key], self.names[module_key]
        self._open: dict[str, Call] = {}
        self._keys: list[str] = []  # the graph keys of the calls on the stack, after the model's own

    def __enter__(self) -> GraphTracker:
        return self  # nothing to hook: the graph says which call is running

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The graph's output for ``model(*args, **kwargs)``, every module call recorded."""
        model = self.model
        codegen = self.graph._codegen
        info = getattr(codegen, "pytree_info", None)
        if info is not None and info.in_spec is not None:
            from torch.fx._pytree import tree_flatten_spec

            flat = tree_flatten_spec((list(args), kwargs), info.in_spec)
        elif kwargs:
            flat = list(args) + list(kwargs.values())
        else:
            flat = list(args)
        root = Call("", self._types[id(model)], 0, 0, specs(args, "input") + specs(kwargs, "input"), id(model))
        self.calls.append(root)
        self.stack.append(root)
        runner = _Runner(self.graph_module, self)
        out = runner.run(*flat, enable_io_processing=False)
        output = self.graph.process_outputs(out)
        root.outputs = specs(output, "output")
        root.completed = True
        self.stack.pop()
        return output

    def enter_node(self, node: fx.Node, env: dict[fx.Node, Any]) -> None:
        self._sync(_stack(node), env)

    def leave_all(self, env: dict[fx.Node, Any]) -> None:
        self._sync([], env)

    def _sync(self, stack: list[tuple[str, str, str]], env: dict[fx.Node, Any]) -> None:
        keys = [key for key, _, _ in stack]
        common = 0
        while common < min(len(keys), len(self._keys)) and keys[common] == self._keys[common]:
            common += 1
        while len(self._keys) > common:
            self._close(self._keys.pop(), env)
        for key, _, _ in stack[common:]:
            self._keys.append(key)
            self._push(key, env)

    def _push(self, key: str, env: dict[fx.Node, Any]) -> None:
        call = self._open.get(key)
        if call is None:  # a call whose nodes are not contiguous continues where it was
            module_key = self._key_of[key]
            n = self._count.get(module_key, 0)
            self._count[module_key] = n + 1
            members = set(self._members[key])
            inputs = dict.fromkeys(
                arg
                for node in self._members[key]
                for arg in node.all_input_nodes
                if arg not in members and arg.op != "get_attr"
            )
            values = tuple(env[arg] for arg in inputs if arg in env)
            name = self.names[module_key]
            call = Call(name, self._types[module_key], len(self.stack), n, specs(values, "input"), module_key)
            self._open[key] = call
            self.calls.append(call)
        self.stack.append(call)

    def _close(self, key: str, env: dict[fx.Node, Any]) -> None:
        call = self.stack.pop()
        members = set(self._members[key])
        leaving = [
            env[node]
            for node in self._members[key]
            if node in env and any(user not in members for user in node.users)
        ]
        call.outputs = specs(leaving[0] if len(leaving) == 1 else tuple(leaving), "output")
        call.completed = True


class _Runner(fx.Interpreter):
    """An interpreter that tells the tracker which node runs next."""

    def __init__(self, module: fx.GraphModule, tracker: GraphTracker) -> None:
        super().__init__(module)
        self.tracker = tracker

    def run_node(self, n: fx.Node) -> Any:
        if n.op in _RUN:
            self.tracker.enter_node(n, self.env)
        elif n.op == "output":  # every call ends before the graph returns (and frees its values)
            self.tracker.leave_all(self.env)
        return super().run_node(n)


def program_module(obj: Any) -> Any:
    """A ``torch.export`` ``ExportedProgram``'s module (its graph names the module calls); anything
    else as it is. Checked by name: importing torch.export to check the type is slow."""
    if type(obj).__name__ == "ExportedProgram" and hasattr(obj, "graph_signature"):
        return obj.module()
    return obj


__all__ = ["GraphTracker", "is_exported_graph", "program_module"]
