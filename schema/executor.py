"""Execution context with a fast path for plain scalar fields (issue 2).

Why: for a list of objects most fields are plain attributes -- ``title: str`` on a Strawberry
type with no resolver. graphql-core still runs its general machinery for each of them: a
``Path``, a resolve info (Strawberry's is a 15-field tuple), the middleware lookup, the
argument check, ``complete_value`` with its type dispatch. For 20 objects with 6 fields that is
about half of the request's CPU (bench/graphql_overhead.py: ~700 -> ~350 µs in process).

What the fast path does: for each selection set, once per request, it decides which fields
are *safe*; for those it reads the attribute and coerces it exactly as graphql-core would
(``getattr(source, python_name)`` as Strawberry's default resolver does, then the type's
``coerce_output_value``, as ``Executor.complete_leaf_value`` does). A field is safe when

* its resolver is Strawberry's ``_get_basic_result`` (no resolver, no field extensions, so no
  permission classes, no exception handlers) and the Strawberry field has no directives and
  ``StrawberryConfig.default_resolver`` is ``getattr``;
* its type is a scalar or an enum, nullable or non-null (no lists, no objects);
* no node of the field has arguments or directives (so no ``@skip``/``@include`` either,
  although graphql-core has already applied those when collecting fields), none carries
  ``@defer`` usage or fragment variables, and no delivery group is active;
* the request has no resolver middleware (no Strawberry extension with a ``resolve`` hook).

The relay ``id`` of a Node type that keeps Strawberry's ``resolve_id``/``resolve_typename`` is
read the same way (``_relay_id_plan``, issue 15): base64 of "<type>:<id attribute>", as
``Node._id`` + the ``GlobalID`` scalar produce; any value but a plain one goes to the resolver.

Two more kinds of field are read so (issue 15, the lean catalog page), without the resolver
call, Strawberry's ``Info`` and graphql-core's resolve info:

* a field whose Strawberry definition names a *ready attribute* (``metadata=ready("_x")``):
  when the source object carries that attribute, its value is what the resolver would have
  returned (a list page filled it for the whole page; ``ready`` documents the contract); when
  it does not, the resolver runs as usual. Only for fields without extensions, permission
  classes or directives.
* an object-typed field (plain attribute, or ready attribute) whose object type has no
  ``is_type_of`` or Strawberry's own (which ignores the resolve info): a plain non-null value
  is checked with it and its sub-selection executed at once (graphql-core's
  ``complete_object_value`` minus the resolve info); anything else takes graphql-core's path.

Anything else goes through graphql-core's ``execute_field`` unchanged. On a safe field the
value is read once; if it is not a plain completed value -- ``None``, ``Undefined``, an
exception, an awaitable, or a value the scalar refuses -- it is handed, as read, to
graphql-core's own completion (``complete_value`` / ``complete_awaitable_value`` /
``handle_field_error``, as in ``execute_field``), so null checks, error messages, error
paths and error propagation are graphql-core's. An exception raised by the attribute read is
handled as a resolver's exception. Fields are processed in document order, so errors are
collected in the same order as without the fast path.

What it relies on (private APIs; pinned here: graphql-core 3.3.2, strawberry-graphql 0.341.2):

* graphql-core ``Executor.execute_fields`` (overridden here: same signature, same loop, the
  same handling of awaitables via ``graphql.pyutils.gather_with_cancel`` and
  ``Executor.settle_in_background``), and the internals it calls: ``execute_field``,
  ``build_resolve_info``, ``complete_value``, ``complete_awaitable_value``,
  ``handle_field_error``, ``middleware_manager._middleware_resolvers``,
  ``FieldDetails(node, defer_usage, fragment_variable_values)``; graphql-core memoises the
  grouped field set of a selection per field list (``collect_subfields``), so every item of
  a list comes with the same ``grouped_field_set`` object: plans are cached on its identity.
* Strawberry: ``StrawberryGraphQLCoreExecutionContext`` (the base class, from
  ``strawberry.schema.schema``), the ``"strawberry-definition"`` back-reference in
  ``GraphQLField.extensions``, ``StrawberryField.is_basic_field`` / ``default_resolver`` /
  ``python_name`` / ``directives``, and the name of the basic resolver
  ``_get_basic_result`` that ``GraphQLCoreConverter.from_resolver`` installs.

How it is guarded: tests/test_executor.py runs a corpus of queries (real schema with data,
and a throwaway schema for nulls, errors, overflow, enums, awaitables, async resolvers and
arguments) with this class and with Strawberry's stock one, and requires identical ``data``
(key order included) and ``errors``; it also checks that the fast path is actually taken
and that the pinned versions are the installed ones -- upgrading either library fails that
test until this module has been re-read against the new internals.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType, Undefined
from graphql.pyutils import Path, gather_with_cancel
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# The versions whose internals this module was checked against (see the docstring).
GRAPHQL_CORE_VERSION = "3.3.2"
STRAWBERRY_VERSION = "0.341.2"

# How a safe field is read: (attribute, coerce_output_value of a leaf or None for an object
# type, kind). GraphQLField is unhashable, so plans are keyed by id, with a weak reference
# that both checks the identity and removes the entry with the field.
LEAF, RELAY_ID, READY = 0, 1, 2
Plan = tuple[str, Callable[[Any], Any] | None, int]
_FIELD_PLANS: dict[int, tuple[weakref.ref[Any], Plan | None]] = {}
_PLAIN = (str, int, float, bool)
_MISSING: Any = object()
READY_KEY = "kameng.ready"


def ready(attribute: str) -> dict[str, str]:
    """``strawberry.field(metadata=ready("_x"))``: a source object that has the attribute ``_x``
    holds in it exactly what the field's resolver would return for it (so the resolver is not
    called). Whoever sets ``_x`` also records what the resolver would (e.g. cache tags)."""
    return {READY_KEY: attribute}


def _completion(field_type: Any) -> Callable[[Any], Any] | None | bool:
    """The leaf's coerce_output_value, None for an object type read directly, False otherwise."""
    inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if isinstance(inner, (GraphQLScalarType, GraphQLEnumType)):
        return inner.coerce_output_value  # type: ignore[no-any-return]
    if isinstance(inner, GraphQLObjectType) and (
        inner.is_type_of is None
        # Strawberry's own (schema_converter._get_is_type_of) looks at the object only.
        or getattr(inner.is_type_of, "__qualname__", "").endswith("_get_is_type_of.<locals>.is_type_of")
    ):
        return None
    return False


def _field_plan(field_def: Any) -> Plan | None:
    """How to read the field if it is safe, else None."""
    key = id(field_def)
    entry = _FIELD_PLANS.get(key)
    if entry is not None and entry[0]() is field_def:
        return entry[1]
    plan: Plan | None = None
    definition = (field_def.extensions or {}).get("strawberry-definition")
    completion = _completion(field_def.type)
    if definition is None or completion is False or getattr(definition, "directives", None):
        pass
    elif (
        getattr(field_def.resolve, "__name__", "") == "_get_basic_result"
        and getattr(definition, "is_basic_field", False)
        and getattr(definition, "default_resolver", None) is getattr
        and isinstance(getattr(definition, "python_name", None), str)
    ):
        plan = (definition.python_name, completion, LEAF)  # type: ignore[arg-type]
    elif (
        isinstance((getattr(definition, "metadata", None) or {}).get(READY_KEY), str)
        and not definition.extensions and not getattr(definition, "permission_classes", None)
        and not field_def.args  # a ready value answers for one set of arguments: none
    ):
        plan = (definition.metadata[READY_KEY], completion, READY)  # type: ignore[arg-type]
    _FIELD_PLANS[key] = (weakref.ref(field_def, lambda _ref, key=key: _FIELD_PLANS.pop(key, None)), plan)
    return plan


_RELAY_PLANS: dict[tuple[int, str], tuple[weakref.ref[Any], Plan | None]] = {}


def _relay_id_plan(field_def: Any, parent_type: Any) -> Plan | None:
    """The relay ``id`` of a Node type whose ``resolve_id``/``resolve_typename`` are Strawberry's
    own (issue 15): ``Node._id`` returns ``GlobalID(parent type name, str(getattr(root, id
    attribute)))``, serialised as ``to_base64(type name, node id)``; read it so. Anything but a
    plain value is handed to the resolver itself (``True`` in the plan)."""
    key = (id(field_def), parent_type.name)
    entry = _RELAY_PLANS.get(key)
    if entry is not None and entry[0]() is field_def:
        return entry[1]
    plan = None
    definition = (field_def.extensions or {}).get("strawberry-definition")
    resolver = getattr(definition, "base_resolver", None)
    wrapped = getattr(getattr(resolver, "wrapped_func", None), "__func__", None)
    type_definition = (parent_type.extensions or {}).get("strawberry-definition")
    origin = getattr(type_definition, "origin", None)
    if (
        wrapped is relay.Node._id.__func__  # type: ignore[attr-defined]
        and not definition.extensions and not getattr(definition, "permission_classes", None)
        and not getattr(definition, "directives", None)
        and isinstance(origin, type) and issubclass(origin, relay.Node)
        and origin.resolve_id.__func__ is relay.Node.resolve_id.__func__  # type: ignore[attr-defined]
        and origin.resolve_typename.__func__ is relay.Node.resolve_typename.__func__  # type: ignore[attr-defined]
    ):
        name = parent_type.name

        def coerce(value: Any, name: str = name) -> str:
            return to_base64(name, str(value))

        plan = (origin.resolve_id_attr(), coerce, RELAY_ID)
    _RELAY_PLANS[key] = (weakref.ref(field_def, lambda _ref, key=key: _RELAY_PLANS.pop(key, None)), plan)
    return plan


def _plain_nodes(field_details_list: Any) -> bool:
    for details in field_details_list:
        node = details.node
        if node.arguments or node.directives or details.defer_usage is not None:
            return False
        if details.fragment_variable_values is not None:
            return False
    return True


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with plain scalar/enum attribute fields read directly."""

    def _selection_plan(self, parent_type: Any, grouped_field_set: Any) -> list[Any] | None:
        """Per field of the selection, in order: (name, details, Plan or None, field).
        None when no field of the selection is safe."""
        plans = self.__dict__.get("_kameng_selection_plans")
        if plans is None:
            manager = self.middleware_manager
            if manager is not None and manager._middleware_resolvers is not None:
                return None  # resolver middleware must see every field
            plans = self.__dict__["_kameng_selection_plans"] = {}
        key = (id(grouped_field_set), parent_type.name)
        entry = plans.get(key)
        if entry is None or entry[0] is not grouped_field_set:
            fields = parent_type.fields
            plan: list[Any] = []
            any_fast = False
            for response_name, field_details_list in grouped_field_set.items():
                fast = None
                field_def = fields.get(field_details_list[0].node.name.value)
                if field_def is not None and _plain_nodes(field_details_list):
                    fast = _field_plan(field_def) or _relay_id_plan(field_def, parent_type)
                any_fast = any_fast or fast is not None
                plan.append((response_name, field_details_list, fast, field_def))
            entry = (grouped_field_set, plan if any_fast else None)  # keeps the set alive: ids stay unique
            plans[key] = entry
        return entry[1]

    def execute_fields(  # type: ignore[no-untyped-def]
        self, parent_type, source_value, path, grouped_field_set, position_context
    ):
        plan = self._selection_plan(parent_type, grouped_field_set) if position_context is None else None
        if plan is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        # graphql-core's Executor.execute_fields, with the fast read for safe fields.
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, fast, field_def in plan:
                if fast is not None:
                    try:
                        value = getattr(source_value, fast[0], _MISSING) if fast[2] == READY else (
                            getattr(source_value, fast[0]))
                    except Exception as error:  # as the resolver's own exception
                        value = error
                    if value is _MISSING:  # not filled: the resolver answers
                        fast = None
                if fast is None:
                    result = self.execute_field(
                        parent_type, source_value, field_details_list, self._path(path, response_name, parent_type),
                        position_context,
                    )
                elif fast[1] is None:
                    result = self._complete_object(
                        field_def, parent_type, field_details_list, path, response_name, value, position_context
                    )
                else:
                    if type(value) in _PLAIN or not (
                        value is None or value is Undefined or isinstance(value, Exception) or is_awaitable(value)
                    ):
                        try:
                            coerced = fast[1](value)
                        except Exception:
                            coerced = None
                        if coerced is not None and coerced is not Undefined:
                            results[response_name] = coerced
                            continue
                    if fast[2] == RELAY_ID:  # anything unusual goes to the resolver itself
                        result = self.execute_field(
                            parent_type, source_value, field_details_list,
                            self._path(path, response_name, parent_type), position_context,
                        )
                    else:
                        result = self._complete_read(
                            field_def, parent_type, field_details_list, path, response_name, value, position_context
                        )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise

        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited_results = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited_results, strict=True))
            return results

        return get_results()

    @staticmethod
    def _path(path: Any, response_name: str, parent_type: Any) -> Any:
        return Path(path, response_name, parent_type.name)

    def _complete_object(  # type: ignore[no-untyped-def]
        self, field_def, parent_type, field_details_list, path, response_name, result, position_context
    ):
        """graphql-core's execute_field + complete_object_value for an object read directly;
        anything but a plain object of the type goes to graphql-core's completion."""
        object_type = field_def.type.of_type if isinstance(field_def.type, GraphQLNonNull) else field_def.type
        if (
            result is None or result is Undefined or isinstance(result, Exception) or self.is_awaitable(result)
            or (object_type.is_type_of is not None and object_type.is_type_of(result, None) is not True)
        ):
            return self._complete_read(
                field_def, parent_type, field_details_list, path, response_name, result, position_context
            )
        field_path = self._path(path, response_name, parent_type)
        try:
            completed = self.collect_and_execute_subfields(
                object_type, field_details_list, field_path, result, position_context
            )
            if self.is_awaitable(completed):

                async def await_completed() -> Any:
                    try:
                        return await completed
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, field_def.type, field_details_list, field_path)
                        return None

                return await_completed()
        except Exception as raw_error:
            self.handle_field_error(raw_error, field_def.type, field_details_list, field_path)
            return None
        return completed

    def _complete_read(  # type: ignore[no-untyped-def]
        self, field_def, parent_type, field_details_list, path, response_name, result, position_context
    ):
        """The tail of graphql-core's Executor.execute_field, for a value already resolved."""
        field_path = self._path(path, response_name, parent_type)
        return_type = field_def.type
        info = self.build_resolve_info(
            field_def, [details.node for details in field_details_list], parent_type, field_path
        )
        try:
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, field_path, result, position_context
                )
            completed = self.complete_value(return_type, field_details_list, info, field_path, result, position_context)
            if self.is_awaitable(completed):  # not for a leaf type; kept as in execute_field

                async def await_completed() -> Any:
                    try:
                        return await completed
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, return_type, field_details_list, field_path)
                        return None

                return await_completed()
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, field_path)
            return None
        return completed
