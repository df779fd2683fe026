"""The template engine: Jinja2 in its immutable sandbox, bounded while it runs (used by the engines behind the
``TemplateEngine`` port: in-process for tests, in isolated worker processes in the API).

Templates are written by API clients, so they are untrusted code. Rendering runs in Jinja2's immutable
sandbox (no access to internals, no mutation of the variables), and is also bounded in resources, because a
few bytes of template can otherwise ask for gigabytes (``{{ 'x' * 10**10 }}``) or hours of looping:

- output is streamed and cut off just past the channel's content limit;
- loops share a per-render iteration budget, and a wall-clock deadline is checked at every loop step, call and
  intercepted operator;
- the operators, methods and filters that can build a large value from small inputs (``*``, ``**``, ``%``,
  ``+``, ``~``, padding, ``replace``, ``join``, ``format``, ``batch``, ``slice`` ...) check the size of what
  they are about to build.

Variables are strict: a missing one is an error naming it, never a silent blank. Rendering goes on past a
missing variable (with an empty stand-in) only so that one error can name every missing variable; that output
is then thrown away.

Pure: Jinja2 is used as a library, with no loader, so a template cannot read files or other templates.

One module of ~550 lines on purpose: the guards are one mechanism (the sandbox subclass, the AST transformer
and the size estimates call each other), and a reviewer auditing the sandbox should read it in one place.
"""

from __future__ import annotations

import functools
import re
import string
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from jinja2 import Environment, TemplateSyntaxError, UndefinedError, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel
from notify.domain.templates import (
    MAX_RENDERED_CHARS,
    Template,
    check_body,
    check_rendered,
    check_subject,
    content_too_long,
    missing_variables,
    subject_error,
)
from notify.domain.validation import MAX_CONTENT_CHARS, MAX_SUBJECT_CHARS

# Bound on any one value a template builds (string, list ...): the longest content any channel accepts.
MAX_VALUE_SIZE = max(MAX_CONTENT_CHARS.values())
# Generous for real notifications (hundreds of order lines); small enough that a hostile template stops.
MAX_LOOP_ITERATIONS = 20_000
RENDER_TIME_LIMIT_S = 0.25
_MAX_MESSAGE_CHARS = 300


def check_template_source(channel: Channel, body: str, subject: str | None) -> list[FieldError]:
    """Everything wrong with a template's source: the domain's rules for body and subject, then Jinja2 syntax
    errors (``line N: ...``). Does not render anything."""
    errors: list[FieldError] = []
    err = check_body(body) or _syntax_error("body", body)
    if err:
        errors.append(err)
    if subject is not None:
        err = check_subject(channel, subject) or _syntax_error("subject", subject)
        if err:
            errors.append(err)
    return errors


def _syntax_error(field_name: str, source: str) -> FieldError | None:
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        return FieldError(
            field_name, f"line {exc.lineno}: {_clip(exc.message or str(exc))}", "template_syntax"
        )
    return None


# --- rendering ----------------------------------------------------------------------------------------------


def render(
    template: Template, variables: Mapping[str, Any], field_prefix: str = ""
) -> tuple[str, str | None]:
    """The template's (content, subject) for ``variables``. Raises ValidationFailed naming every missing
    variable, a refused or failing template, or rendered content that breaks the channel's rules."""
    missing_names: list[str] = []
    failures: list[FieldError] = []
    content = _render_part(
        template.body,
        variables,
        MAX_RENDERED_CHARS[template.channel],
        missing_names,
        failures,
        content_too_long(template.channel, field_prefix),
        field_prefix,
    )
    subject = None
    if template.subject is not None:
        subject = _render_part(
            template.subject,
            variables,
            MAX_SUBJECT_CHARS,
            missing_names,
            failures,
            subject_error(field_prefix, "the rendered subject is longer"),
            field_prefix,
        )
    if missing_names:
        # before other failures: a missing variable rendered as an empty stand-in may well have caused them
        raise ValidationFailed.for_fields(missing_variables(missing_names, field_prefix))
    if failures or content is None:
        raise ValidationFailed.for_fields(failures)
    failures = check_rendered(template.channel, content, subject, field_prefix)
    if failures:
        raise ValidationFailed.for_fields(failures)
    return content, subject


def _render_part(
    source: str,
    variables: Mapping[str, Any],
    limit: int,
    missing_names: list[str],
    failures: list[FieldError],
    too_long: FieldError,
    prefix: str,
) -> str | None:
    try:
        return _render_text(source, variables, limit, missing_names)
    except _TooLong:
        failures.append(too_long)
    except _Refused as exc:
        failures.append(FieldError(prefix + "template_id", exc.message, exc.code))
    return None


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _TooLong(Exception):
    """The rendered text passed its limit (rendering stopped there)."""


class _LimitExceeded(SecurityError):
    """The template asked for more time, iterations or memory than a render may use."""


@dataclass(slots=True)
class _RenderState:
    deadline: float
    iterations_left: int
    missing: list[str] = field(default_factory=list)


_STATE: ContextVar[_RenderState | None] = ContextVar("notify_template_render", default=None)


def _render_text(source: str, variables: Mapping[str, Any], limit: int, missing_names: list[str]) -> str:
    state = _RenderState(time.monotonic() + RENDER_TIME_LIMIT_S, MAX_LOOP_ITERATIONS, missing_names)
    token = _STATE.set(state)
    try:
        try:
            compiled = _compile(source)
        except TemplateSyntaxError as exc:  # stored before a stricter check, or by another version
            raise _Refused(
                "template_syntax", f"the template does not compile: line {exc.lineno}: {exc.message}"
            ) from None
        chunks: list[str] = []
        size = 0
        # generate() is a generator; typed as an Iterator, so say so to be able to close it
        stream = cast(Generator[str, None, None], compiled.generate(dict(variables)))
        try:
            for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise _TooLong
                chunks.append(chunk)
        finally:
            stream.close()  # while the budget is still in place: closing runs the template's cleanup
        return "".join(chunks)
    except (_TooLong, _Refused):
        raise
    except _LimitExceeded as exc:
        raise _Refused("template_limit", _clip(f"the template exceeds a rendering limit: {exc}")) from None
    except SecurityError as exc:
        raise _Refused(
            "template_unsafe", _clip(f"the template did something the sandbox forbids: {exc}")
        ) from None
    except UndefinedError as exc:
        if missing_names:
            raise _Refused("missing_variable", "missing variable") from None  # reported by name by render()
        raise _Refused("template_error", _clip(f"rendering failed: {exc}")) from None
    except Exception as exc:  # any failure of a client's template is a 400, never a 500
        raise _Refused("template_error", _clip(f"rendering failed: {type(exc).__name__}: {exc}")) from None
    finally:
        _STATE.reset(token)


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE_CHARS else message[: _MAX_MESSAGE_CHARS - 1] + "…"


# --- the sandbox --------------------------------------------------------------------------------------------


def _tick() -> None:
    state = _STATE.get()
    if state is not None and time.monotonic() > state.deadline:
        raise _LimitExceeded(f"rendering took longer than {RENDER_TIME_LIMIT_S} s")


def _check_size(size: int) -> None:
    if size > MAX_VALUE_SIZE:
        raise _LimitExceeded(f"a value would have {size} characters or items (at most {MAX_VALUE_SIZE})")


def _bounded(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        _check_size(len(value))
    return value


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _check_ints(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            _check_size(value)


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int | None:
    if not (isinstance(text, str | bytes) and isinstance(old, str | bytes) and isinstance(new, str | bytes)):
        return None
    hits = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _joined_size(items: Any, separator: Any) -> int | None:
    if not isinstance(items, list | tuple) or not isinstance(separator, str | bytes):
        return None
    parts = sum(len(x) if isinstance(x, str | bytes) else 0 for x in items)
    return parts + max(0, len(items) - 1) * len(separator)


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str, values: Any) -> None:
    """``fmt % values`` can pad to any width (``'%999999999s' % 1``)."""
    star = False
    for match in _PRINTF_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*":
                star = True
            elif part:
                _check_size(int(part))
    if star:
        _check_ints(values if isinstance(values, tuple) else (values,))


def _check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """``'{:>999999999}'.format(1)`` pads to any width; so may a nested ``{:>{w}}``."""
    nested = False
    for _, field_name, spec, _ in string.Formatter().parse(fmt):
        if field_name is None or not spec:
            continue
        nested = nested or "{" in spec
        for number in re.findall(r"\d+", spec):
            _check_size(int(number))
    if nested:
        _check_ints(args)
        _check_ints(kwargs.values())
        for arg in args:
            if isinstance(arg, Mapping):  # format_map
                _check_ints(arg.values())


def _estimate(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    """What a size-amplifying string method or filter named ``name`` would build from ``value``: its
    size when cheaply known; checks width-like arguments on the way."""
    length = len(value) if isinstance(value, str | bytes) else 0
    if name in ("center", "ljust", "rjust", "zfill"):
        width = _arg(args, kwargs, 0, "width", 80 if name == "center" else 0)
        return max(length, width) if isinstance(width, int) else None
    if name == "indent":
        width = _arg(args, kwargs, 0, "width", 4)
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        lines = value.count("\n") + 1 if isinstance(value, str) else 1
        return length + lines * pad
    if name == "expandtabs":
        tab = _arg(args, kwargs, 0, "tabsize", 8)
        return length * max(1, tab) if isinstance(tab, int) else None
    if name == "replace":
        return _replaced_size(
            value,
            _arg(args, kwargs, 0, "old", ""),
            _arg(args, kwargs, 1, "new", ""),
            _arg(args, kwargs, 2, "count", None),
        )
    if name == "translate":
        table = _arg(args, kwargs, 0, "table", None)
        if isinstance(table, Mapping):
            longest = max((len(v) for v in table.values() if isinstance(v, str | bytes)), default=1)
            return length * max(1, longest)
        return None
    if name in ("batch", "slice"):
        _check_ints(args[:1])
        return None
    return None


# String methods (reached through ``environment.call``) and filters that can build a large value from a
# small one. Everything else is bounded by the size of its inputs.
_AMPLIFYING_METHODS = frozenset(
    {
        "center",
        "ljust",
        "rjust",
        "zfill",
        "expandtabs",
        "replace",
        "translate",
        "join",
        "format",
        "format_map",
    }
)
_AMPLIFYING_FILTERS = frozenset({"center", "indent", "replace", "join", "format", "batch", "slice"})


def _check_method(name: str, owner: str | bytes, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if name in ("format", "format_map"):
        if isinstance(owner, str):
            _check_str_format(owner, args, kwargs)
        return
    if name == "join":
        size = _joined_size(_arg(args, kwargs, 0, "iterable", None), owner)
    else:
        size = _estimate(name, owner, args, kwargs)
    if size is not None:
        _check_size(size)


def _check_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if name == "format":
        if isinstance(value, str):
            _check_printf(value, kwargs or args)
        return
    if name == "join":
        size = _joined_size(value, _arg(args, kwargs, 0, "d", ""))
    else:
        size = _estimate(name, value, args, kwargs)
    if size is not None:
        _check_size(size)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps copies ``jinja_pass_arg``, so Jinja still passes the eval context / environment first.
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        rest = args
        while rest and isinstance(rest[0], EvalContext | Environment | Context):
            rest = rest[1:]
        if rest:
            _check_filter(name, rest[0], rest[1:], kwargs)
        return _bounded(func(*args, **kwargs))

    return guarded


class _CollectingUndefined(StrictUndefined):
    """StrictUndefined that, during a render, notes each missing variable and stands in for it as empty so
    the render can go on and find the others; render() then refuses the output. An undefined the sandbox
    made for an unsafe attribute (it carries a hint and SecurityError) keeps failing at once."""

    __slots__ = ()

    def _noted(self) -> bool:
        state = _STATE.get()
        if (
            state is None
            or self._undefined_hint is not None
            or self._undefined_exception is not UndefinedError
        ):
            return False
        if self._undefined_obj is missing:
            note = f"missing variable '{self._undefined_name}'"
        else:
            note = f"missing variable: {super()._undefined_message}"
        if note not in state.missing:
            state.missing.append(note)
        return True

    @property
    def _undefined_message(self) -> str:
        self._noted()  # every failing operation builds this message
        return super()._undefined_message

    def __str__(self) -> str:  # type: ignore[override]
        if self._noted():
            return ""
        self._fail_with_undefined_error()

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self._noted():
            return iter(())
        self._fail_with_undefined_error()

    def __len__(self) -> int:  # type: ignore[override]
        if self._noted():
            return 0
        self._fail_with_undefined_error()

    def __bool__(self) -> bool:  # type: ignore[override]
        if self._noted():
            return False
        self._fail_with_undefined_error()

    def __contains__(self, item: Any) -> bool:  # type: ignore[override]
        if self._noted():
            return False
        self._fail_with_undefined_error()

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        if self._noted():
            return self  # {{ user.name }} with no user: one note, for "user"
        self._fail_with_undefined_error()

    def __getitem__(self, key: Any) -> Any:
        if self._noted():
            return self
        self._fail_with_undefined_error()


class _GuardedSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        sized = (str, bytes, list, tuple)
        if operator == "*":
            if isinstance(left, sized) and isinstance(right, int):
                _check_size(len(left) * right)
            elif isinstance(right, sized) and isinstance(left, int):
                _check_size(len(right) * left)
        elif operator == "**":
            # the result has about bit_length * right bits; keep it printable (4300 digits, Python's cap)
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right > 0
                and left.bit_length() * right > 14_000
            ):
                raise _LimitExceeded("a power is too large")
        elif operator == "%":
            if isinstance(left, str):
                _check_printf(left, right)
        elif isinstance(left, sized) and isinstance(right, sized):
            _check_size(len(left) + len(right))
        return _bounded(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        method = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "")
        if isinstance(owner, str | bytes) and name in _AMPLIFYING_METHODS:
            _check_method(name, owner, args, kwargs)
        return _bounded(super().call(context, obj, *args, **kwargs))

    def guarded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Every ``{% for %}`` iterates through this (see _Guard): one shared budget per render."""
        state = _STATE.get()
        for item in iterable:
            if state is not None:
                state.iterations_left -= 1
                if state.iterations_left < 0:
                    raise _LimitExceeded(f"loops ran more than {MAX_LOOP_ITERATIONS} times")
                if time.monotonic() > state.deadline:
                    raise _LimitExceeded(f"rendering took longer than {RENDER_TIME_LIMIT_S} s")
            yield item

    def guarded_concat(self, *parts: Any) -> str:
        """The ``~`` operator (see _Guard), sized before it is built: ``{% set a = a ~ a %}`` doubles."""
        texts = [str(p) for p in parts]
        _check_size(sum(len(t) for t in texts))
        return "".join(texts)


class _Guard(NodeTransformer):
    """Rewrites a parsed template so every loop iterates through ``guarded_iter`` and every ``~`` goes
    through ``guarded_concat``: the sandbox has no hook of its own for either."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _environment_call("guarded_iter", [cast(nodes.Expr, node.iter)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _environment_call("guarded_concat", list(node.nodes), node.lineno)


def _environment_call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name, lineno=lineno), args, [], None, None, lineno=lineno)


_NO_LOADER_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


@functools.cache
def _environment() -> _GuardedSandbox:
    env = _GuardedSandbox(undefined=_CollectingUndefined, autoescape=False, cache_size=0)
    env.globals.pop("lipsum", None)  # lipsum(n=10**9) writes without bound
    for name in _AMPLIFYING_FILTERS:
        env.filters[name] = _guard_filter(name, env.filters[name])
    return env


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> JinjaTemplate:
    """Parsed, guarded and compiled once per distinct source (a batch renders one template many times)."""
    env = _environment()
    tree = env.parse(source)
    for node in tree.find_all(_NO_LOADER_NODES):
        raise TemplateSyntaxError("a template cannot extend, include or import other templates", node.lineno)
    guarded = _Guard().visit(tree)
    guarded.set_environment(env)
    return env.from_string(guarded)
