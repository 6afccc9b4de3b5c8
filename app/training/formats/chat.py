"""The chat format: what OpenAI's fine-tuning API checks in a conversation, before it is uploaded.

The rules follow the OpenAI cookbook "Data preparation and analysis for chat model fine-tuning" and the API's
chat format (tools, tool calls, content parts, per-message weight).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.training.formats.rules import Columns, Found, type_name, unknown_keys

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = ("role", "content", "name", "function_call", "tool_calls", "tool_call_id", "weight", "refusal")
CHAT_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")

_ROLE_LIST = "system, user, assistant, tool or function"
_MESSAGE_KEY_LIST = ", ".join(MESSAGE_KEYS)
_MESSAGE_KEY_SET = frozenset(MESSAGE_KEYS)
_PLAIN_KEYS = frozenset({"role", "content"})


def _function(value: Any, path: str, found: Found, *, call: bool) -> None:
    """A function definition (name, description, parameters), or a call of one (name, arguments as JSON text)."""
    if not isinstance(value, dict):
        found.append((path, "is required" if value is None else f"must be an object, got {type_name(value)}"))
        return
    name = value.get("name")
    if not isinstance(name, str) or not name:
        found.append((f"{path}.name", "is required" if name is None else "must be a non-empty string"))
    if call and not isinstance(value.get("arguments"), str):
        got = type_name(value.get("arguments"))
        found.append((f"{path}.arguments", f"must be a string (the arguments as JSON text), got {got}"))
    if not call and value.get("parameters") is not None and not isinstance(value["parameters"], dict):
        found.append((f"{path}.parameters", f"must be a JSON Schema object, got {type_name(value['parameters'])}"))


def _tool_calls(calls: Any, path: str, found: Found) -> None:
    if not isinstance(calls, list) or not calls:
        found.append((path, f"must be a non-empty array of tool calls, got {type_name(calls)}"))
        return
    for j, call in enumerate(calls):
        if not isinstance(call, dict):
            found.append((f"{path}[{j}]", f"must be an object, got {type_name(call)}"))
            continue
        if call.get("type", "function") != "function":
            found.append((f"{path}[{j}].type", f"must be 'function', got {call['type']!r}"))
        _function(call.get("function"), f"{path}[{j}].function", found, call=True)


def _content(content: Any, path: str, found: Found) -> None:
    """A string, or an array of text parts {"type": "text", "text": ...}."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        found.append((path, f"must be a string or an array of text parts, got {type_name(content)}"))
        return
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            found.append((f"{path}[{j}]", f"must be an object, got {type_name(part)}"))
        elif part.get("type") != "text":
            found.append((f"{path}[{j}].type", f"must be 'text', got {part.get('type')!r}"))
        elif not isinstance(part.get("text"), str):
            found.append((f"{path}[{j}].text", f"must be a string, got {type_name(part.get('text'))}"))


def _message(message: Any, path: str, found: Found) -> str | None:
    """Check one message; return its role when it has a known one."""
    if type(message) is dict and message.keys() <= _PLAIN_KEYS and type(message.get("content")) is str:
        role: str | None = message.get("role")
        if role in ROLES and role != "function":  # the common case, checked fast: role and text content only
            return role
    if not isinstance(message, dict):
        found.append((path, f"must be an object, got {type_name(message)}"))
        return None
    role = message.get("role")
    if role is None:
        found.append((f"{path}.role", f"is required: one of {_ROLE_LIST}"))
    elif role not in ROLES:
        found.append((f"{path}.role", f"unknown role {role!r}: expected {_ROLE_LIST}"))
        role = None
    for key in message:
        if key not in _MESSAGE_KEY_SET:
            found.append((f"{path}.{key}", f"is not allowed in a message: expected {_MESSAGE_KEY_LIST}"))
    assistant = role == "assistant"
    calls = message.get("tool_calls") is not None or message.get("function_call") is not None
    content = message.get("content")
    if content is not None:
        _content(content, f"{path}.content", found)
    elif not (assistant and calls):
        found.append((f"{path}.content", "is required unless an assistant message makes a tool or function call"))
    for key in ("tool_calls", "function_call", "weight", "refusal"):
        if message.get(key) is not None and role is not None and not assistant:
            found.append((f"{path}.{key}", "is only allowed on assistant messages"))
    if message.get("tool_calls") is not None:
        _tool_calls(message["tool_calls"], f"{path}.tool_calls", found)
    if message.get("function_call") is not None:
        _function(message["function_call"], f"{path}.function_call", found, call=True)
    weight = message.get("weight")
    if weight is not None and (type(weight) is not int or weight not in (0, 1)):
        found.append((f"{path}.weight", f"must be 0 or 1, got {weight!r}"))
    for key in ("name", "tool_call_id", "refusal"):
        if message.get(key) is not None and not isinstance(message[key], str):
            found.append((f"{path}.{key}", f"must be a string, got {type_name(message[key])}"))
    if role == "function" and message.get("name") is None:
        found.append((f"{path}.name", "is required on function messages"))
    return role


def _tools(record: Mapping[str, Any], found: Found) -> None:
    tools = record.get("tools")
    if tools is not None and not isinstance(tools, list):
        found.append(("tools", f"must be an array of tools, got {type_name(tools)}"))
    for k, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict):
            found.append((f"tools[{k}]", f"must be an object, got {type_name(tool)}"))
            continue
        if tool.get("type") != "function":
            found.append((f"tools[{k}].type", f"must be 'function', got {tool.get('type')!r}"))
        _function(tool.get("function"), f"tools[{k}].function", found, call=False)
    functions = record.get("functions")
    if functions is not None and not isinstance(functions, list):
        found.append(("functions", f"must be an array of functions, got {type_name(functions)}"))
    for k, function in enumerate(functions if isinstance(functions, list) else ()):
        _function(function, f"functions[{k}]", found, call=False)
    parallel = record.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        found.append(("parallel_tool_calls", f"must be true or false, got {type_name(parallel)}"))


def chat(record: Mapping[str, Any], found: Found) -> Columns:
    unknown_keys(record, CHAT_KEYS, "chat", found)
    messages = record.get("messages")
    if messages is None:
        found.append(("messages", "is required for format chat"))
    elif not isinstance(messages, list):
        found.append(("messages", f"must be an array of messages, got {type_name(messages)}"))
    elif not messages:
        found.append(("messages", "must not be empty"))
    else:
        roles = [_message(message, f"messages[{i}]", found) for i, message in enumerate(messages)]
        last = len(messages) - 1
        if "assistant" not in roles:
            found.append(("messages", "must have at least one assistant message"))
        elif roles[last] not in ("assistant", None):
            found.append(
                (f"messages[{last}].role", f"is {roles[last]!r}: a conversation must end with an assistant message")
            )
    if len(record) > 1:
        _tools(record, found)
    return {"input": {key: record[key] for key in CHAT_KEYS if record.get(key) is not None}}
