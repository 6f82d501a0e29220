"""The chat layout of a prompt (`prompt.chat=true`): the prompt is the user's message, the
answer the assistant's reply, demonstrations earlier turns. It is read off the tokenizer's
chat template once, by rendering placeholders and cutting where they sit, so every arm lays
out exactly the text `apply_chat_template` gives, and the scorer still shares the prefix."""

from dataclasses import dataclass

from ..errors import UserError

_USER, _REPLY, _NEXT = "\x00pvf-user\x00", "\x00pvf-reply\x00", "\x00pvf-next\x00"


@dataclass(frozen=True)
class ChatLayout:
    head: str  # before the first user message: the system turn and the user's header
    reply: str  # after a user message: its end and the assistant's header
    turn: str  # after an assistant reply: its end and the next user's header


def chat_layout(tokenizer, system: str | None, model_name: str) -> ChatLayout:
    """The layout of `tokenizer`'s chat template; `system`: the system message (None: the
    template's own default, if it has one)."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"prompt.chat=true needs a chat template, and the tokenizer of "
                        f"model={model_name} has none; set prompt.chat=false (plain text), or "
                        "use an instruct model such as model=smollm2")
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user", "content": _USER}, {"role": "assistant", "content": _REPLY},
                 {"role": "user", "content": _NEXT}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    try:
        head, rest = text.split(_USER)
        reply, rest = rest.split(_REPLY)
        turn, last = rest.split(_NEXT)
    except ValueError:
        head = reply = turn = last = None
    if last is None or last != reply:
        raise UserError(f"the chat template of model={model_name} does not lay out every turn "
                        "the same way (it rewrites message contents or the last turn), so "
                        "prompts cannot share it; set prompt.chat=false")
    return ChatLayout(head=head, reply=reply, turn=turn)
