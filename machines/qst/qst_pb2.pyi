from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CoalescingInterval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNCOALESCED: _ClassVar[CoalescingInterval]
    _100_MS: _ClassVar[CoalescingInterval]
    _250_MS: _ClassVar[CoalescingInterval]
UNCOALESCED: CoalescingInterval
_100_MS: CoalescingInterval
_250_MS: CoalescingInterval

class Password(_message.Message):
    __slots__ = ("version", "value")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    version: int
    value: str
    def __init__(self, version: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...

class UserPreferences(_message.Message):
    __slots__ = ("coalescing_interval", "coalesce_last_trade")
    COALESCING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    COALESCE_LAST_TRADE_FIELD_NUMBER: _ClassVar[int]
    coalescing_interval: CoalescingInterval
    coalesce_last_trade: bool
    def __init__(self, coalescing_interval: _Optional[_Union[CoalescingInterval, str]] = ..., coalesce_last_trade: _Optional[bool] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("user_name", "password", "user_preferences", "white_label_code", "local_ip", "client_id")
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    USER_PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    WHITE_LABEL_CODE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_IP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_name: str
    password: Password
    user_preferences: UserPreferences
    white_label_code: str
    local_ip: str
    client_id: str
    def __init__(self, user_name: _Optional[str] = ..., password: _Optional[_Union[Password, _Mapping]] = ..., user_preferences: _Optional[_Union[UserPreferences, _Mapping]] = ..., white_label_code: _Optional[str] = ..., local_ip: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TranslateInstrumentSymbolRequest(_message.Message):
    __slots__ = ("symbol_source", "instrument_symbols")
    SYMBOL_SOURCE_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbol_source: int
    instrument_symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbol_source: _Optional[int] = ..., instrument_symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("request_id", "login", "logout", "translate_instrument_symbol")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    LOGOUT_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_INSTRUMENT_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    login: LoginRequest
    logout: LogoutRequest
    translate_instrument_symbol: TranslateInstrumentSymbolRequest
    def __init__(self, request_id: _Optional[int] = ..., login: _Optional[_Union[LoginRequest, _Mapping]] = ..., logout: _Optional[_Union[LogoutRequest, _Mapping]] = ..., translate_instrument_symbol: _Optional[_Union[TranslateInstrumentSymbolRequest, _Mapping]] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("coalescing_interval", "coalesce_last_trade")
    COALESCING_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    COALESCE_LAST_TRADE_FIELD_NUMBER: _ClassVar[int]
    coalescing_interval: CoalescingInterval
    coalesce_last_trade: bool
    def __init__(self, coalescing_interval: _Optional[_Union[CoalescingInterval, str]] = ..., coalesce_last_trade: _Optional[bool] = ...) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProvisioningMessage(_message.Message):
    __slots__ = ("id", "title", "text", "url")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    text: str
    url: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class ProvisioningMessages(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ProvisioningMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[ProvisioningMessage, _Mapping]]] = ...) -> None: ...

class ErrorMessage(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class InstrumentSymbol(_message.Message):
    __slots__ = ("symbol", "instrument_id", "error")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    instrument_id: int
    error: str
    def __init__(self, symbol: _Optional[str] = ..., instrument_id: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class TranslateInstrumentSymbolResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[InstrumentSymbol]
    def __init__(self, records: _Optional[_Iterable[_Union[InstrumentSymbol, _Mapping]]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("request_id", "login", "logout", "provisioning_messages", "error", "translate_instrument_symbol")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    LOGOUT_FIELD_NUMBER: _ClassVar[int]
    PROVISIONING_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRANSLATE_INSTRUMENT_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    login: LoginResponse
    logout: LogoutResponse
    provisioning_messages: ProvisioningMessages
    error: ErrorMessage
    translate_instrument_symbol: TranslateInstrumentSymbolResponse
    def __init__(self, request_id: _Optional[int] = ..., login: _Optional[_Union[LoginResponse, _Mapping]] = ..., logout: _Optional[_Union[LogoutResponse, _Mapping]] = ..., provisioning_messages: _Optional[_Union[ProvisioningMessages, _Mapping]] = ..., error: _Optional[_Union[ErrorMessage, _Mapping]] = ..., translate_instrument_symbol: _Optional[_Union[TranslateInstrumentSymbolResponse, _Mapping]] = ...) -> None: ...
