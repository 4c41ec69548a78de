"""YAML as the Kubernetes API server reads it: JSON values only, no duplicate keys, bounded aliases.

The API server turns YAML into JSON before it decodes an object, so only JSON's types exist
(strings, numbers, booleans, null, lists, mappings with string keys), and its strict field
validation (kubectl's default) refuses a key given twice. This loader holds a spec to the same
rules, and refuses hostile YAML before building any Python value::

    from hp_components._yaml import load_documents, YamlRefused

    try:
        docs = load_documents(text)
    except YamlRefused as err:
        print(err.path, err.message)     # spec.maxTrialCount is given twice (line 14, column 3 and ...)

PyYAML does the work: :func:`load_documents` composes each document into PyYAML's node graph
(libyaml's parser when PyYAML has it; aliases are shared nodes there, nothing is copied), walks
that graph once, and checks tags, keys and cycles and counts what the aliases add: an alias to a
node already walked adds that node's expansion, known from its first visit, so billion laughs is
counted in microseconds, never built. Only then does the safe constructor build the values.
Implicit timestamps stay strings (go-yaml v2, behind sigs.k8s.io/yaml, decodes a timestamp into
an ``interface{}`` as a string too); an explicit ``!!timestamp`` is refused with the other tags.
"""

from __future__ import annotations

from typing import Any, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hp_components.spec import shown  # noqa: F401  re-exported: how an error message shows a value

__all__ = ["load_documents", "YamlRefused", "ALIAS_BUDGET", "shown"]

#: how many nodes aliases may add to a document beyond the nodes written out (a Katib
#: Experiment needs a few hundred at most; billion laughs wants hundreds of millions)
ALIAS_BUDGET = 10_000

_TAG = "tag:yaml.org,2002:"
_JSON_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_MERGE = _TAG + "merge"


class YamlRefused(ValueError):
    """YAML that is not a JSON document Kubernetes would accept; ``path`` is the field path ("" for the input)."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path or '(input)'}: {message}")


def _at(node: Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.1's implicit types without those JSON lacks: timestamps and ``=`` stay strings."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_TAG + "timestamp", _TAG + "value")]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


class _Constructor(yaml.constructor.SafeConstructor):
    """SafeConstructor with JSON's string keys and errors that point at the value."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError) as err:  # ``!!int abc``, ``!!float x``: a YAML error at the value
            raise yaml.constructor.ConstructorError(None, None, f"not a value of its tag {_short_tag(node.tag)}: "
                                                    f"{shown(str(err), 200)}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        # keys as JSON has them: strings (``1: x`` -> "1"), as sigs.k8s.io/yaml converts them
        self.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if key_node.tag != _TAG + "str" else self.construct_object(key_node, deep=deep)
            out[str(key)] = self.construct_object(value_node, deep=deep)
        return out


if getattr(yaml, "__with_libyaml__", False):  # libyaml's parser: a 50 MB scalar in a fraction of a second

    class _Loader(yaml.cyaml.CParser, _Constructor, _Resolver):  # type: ignore[misc]
        def __init__(self, stream: str):
            yaml.cyaml.CParser.__init__(self, stream)
            _Constructor.__init__(self)
            _Resolver.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,  # type: ignore[no-redef]
                  _Constructor, _Resolver):
        def __init__(self, stream: str):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _Constructor.__init__(self)
            _Resolver.__init__(self)


def _check(root: Node, budget: int) -> None:
    """Walk the composed graph once (iteratively): tags, keys, cycles and what the aliases add.

    Each node is walked once; an alias to a node already walked adds that node's full expansion
    (known by then) to ``added``, the nodes beyond those written out, which must stay within ``budget``.
    """
    expanded: dict[int, int] = {}  # id(node) -> nodes in its full expansion
    added = 0
    on_path: set[int] = set()
    stack: list[list[Any]] = []  # frames: [node, children, next index, nodes in its expansion so far]

    def enter(node: Node, path: str) -> None:
        on_path.add(id(node))
        stack.append([node, list(_children(node, path)), 0, 1])

    enter(root, "")
    while stack:
        frame = stack[-1]
        node, children, i, size = frame
        if i == len(children):
            stack.pop()
            on_path.discard(id(node))
            expanded[id(node)] = size
            if stack:
                stack[-1][3] += size
            continue
        frame[2] = i + 1
        child_path, child = children[i]
        if id(child) in on_path:
            raise YamlRefused(child_path, f"is an alias to the value that holds it (anchored at {_at(child)}); JSON "
                                          "has no cycles: write the value out")
        if id(child) in expanded:  # an alias to a node already walked: count it, do not walk it again
            frame[3] += expanded[id(child)]
            added += expanded[id(child)]
            if added > budget:
                raise YamlRefused("", f"its aliases expand to more than {budget} nodes beyond what is written "
                                      f"(reached at {child_path or 'the top'}, anchored at {_at(child)}); a Katib "
                                      "Experiment needs no such expansion: write the values out or use fewer aliases")
            continue
        _check_node(child, child_path)
        enter(child, child_path)


def _check_node(node: Node, path: str) -> None:
    if node.tag not in _JSON_TAGS and not (node.tag == _MERGE and isinstance(node, ScalarNode)):
        raise YamlRefused(path, f"has the tag {_short_tag(node.tag)} ({_at(node)}), which is not a JSON type; "
                                "Kubernetes reads YAML as JSON (strings, numbers, booleans, null, lists, mappings): "
                                "remove the tag or quote the value")


def _children(node: Node, path: str) -> Iterator[tuple[str, Node]]:
    if isinstance(node, SequenceNode):
        for i, child in enumerate(node.value):
            yield _join(path, i), child
    elif isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                raise YamlRefused(path, f"has a {'list' if isinstance(key, SequenceNode) else 'mapping'} as a key "
                                        f"({_at(key)}); JSON keys are strings")
            _check_node(key, path)
            if key.tag == _MERGE:  # ``<<: *base``: its keys may be overridden, so they are not duplicates
                yield _join(path, "<<"), value
                continue
            name = str(key.value)
            child_path = _join(path, name)
            if name in seen:
                where = "an alias of the same key" if seen[name] is key else _at(key)
                raise YamlRefused(child_path, f"is given twice ({_at(seen[name])} and {where}); "
                                              "Kubernetes refuses duplicate keys: keep one")
            seen[name] = key
            yield child_path, value


def load_documents(text: str, *, budget: int = ALIAS_BUDGET) -> list[Any]:
    """Every YAML document in ``text`` as JSON-like values (empty documents are ``None``).

    Raises :class:`YamlRefused` for non-JSON tags, duplicate keys, cyclic aliases and aliases that
    expand past ``budget`` nodes or nest too deeply; ``yaml.YAMLError`` for YAML syntax errors;
    RecursionError for nesting deeper than the pure-Python composer goes (PyYAML without libyaml).
    """
    loader = _Loader(text)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                docs.append(None)
                continue
            _check_node(node, "")
            _check(node, budget)
            docs.append(loader.construct_document(node))
    except yaml.MarkedYAMLError as err:
        if "nesting depth" in str(err.problem):  # libyaml's limit on nesting
            raise YamlRefused("", "is nested too deeply to be an Experiment") from None
        raise
    finally:
        loader.dispose()
    return docs
