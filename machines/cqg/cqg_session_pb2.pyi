from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersionMajor(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_MAJOR: _ClassVar[ProtocolVersionMajor]

class ProtocolVersionMinor(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_MINOR: _ClassVar[ProtocolVersionMinor]

class RealTimeCollapsingLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REAL_TIME_COLLAPSING_LEVEL_NONE: _ClassVar[RealTimeCollapsingLevel]
    REAL_TIME_COLLAPSING_LEVEL_DOM: _ClassVar[RealTimeCollapsingLevel]
    REAL_TIME_COLLAPSING_LEVEL_DOM_BBA: _ClassVar[RealTimeCollapsingLevel]
    REAL_TIME_COLLAPSING_LEVEL_DOM_BBA_TRADES: _ClassVar[RealTimeCollapsingLevel]
PROTOCOL_VERSION_MAJOR: ProtocolVersionMajor
PROTOCOL_VERSION_MINOR: ProtocolVersionMinor
REAL_TIME_COLLAPSING_LEVEL_NONE: RealTimeCollapsingLevel
REAL_TIME_COLLAPSING_LEVEL_DOM: RealTimeCollapsingLevel
REAL_TIME_COLLAPSING_LEVEL_DOM_BBA: RealTimeCollapsingLevel
REAL_TIME_COLLAPSING_LEVEL_DOM_BBA_TRADES: RealTimeCollapsingLevel

class ClientMsg(_message.Message):
    __slots__ = ("logon", "restore_or_join_session", "logoff", "password_change", "obtain_demo_credentials", "user_session_state_request", "ping", "pong", "set_collapsing_level_request")
    LOGON_FIELD_NUMBER: _ClassVar[int]
    RESTORE_OR_JOIN_SESSION_FIELD_NUMBER: _ClassVar[int]
    LOGOFF_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_CHANGE_FIELD_NUMBER: _ClassVar[int]
    OBTAIN_DEMO_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    USER_SESSION_STATE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    SET_COLLAPSING_LEVEL_REQUEST_FIELD_NUMBER: _ClassVar[int]
    logon: Logon
    restore_or_join_session: RestoreOrJoinSession
    logoff: Logoff
    password_change: PasswordChange
    obtain_demo_credentials: ObtainDemoCredentials
    user_session_state_request: UserSessionStateRequest
    ping: Ping
    pong: Pong
    set_collapsing_level_request: SetCollapsingLevelRequest
    def __init__(self, logon: _Optional[_Union[Logon, _Mapping]] = ..., restore_or_join_session: _Optional[_Union[RestoreOrJoinSession, _Mapping]] = ..., logoff: _Optional[_Union[Logoff, _Mapping]] = ..., password_change: _Optional[_Union[PasswordChange, _Mapping]] = ..., obtain_demo_credentials: _Optional[_Union[ObtainDemoCredentials, _Mapping]] = ..., user_session_state_request: _Optional[_Union[UserSessionStateRequest, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., set_collapsing_level_request: _Optional[_Union[SetCollapsingLevelRequest, _Mapping]] = ...) -> None: ...

class ServerMsg(_message.Message):
    __slots__ = ("logon_result", "restore_or_join_session_result", "logged_off", "password_change_result", "user_messages", "obtain_demo_credentials_results", "user_session_state_results", "ping", "pong", "concurrent_connection_join_results", "set_collapsing_level_results")
    LOGON_RESULT_FIELD_NUMBER: _ClassVar[int]
    RESTORE_OR_JOIN_SESSION_RESULT_FIELD_NUMBER: _ClassVar[int]
    LOGGED_OFF_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_CHANGE_RESULT_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    OBTAIN_DEMO_CREDENTIALS_RESULTS_FIELD_NUMBER: _ClassVar[int]
    USER_SESSION_STATE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    CONCURRENT_CONNECTION_JOIN_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SET_COLLAPSING_LEVEL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    logon_result: LogonResult
    restore_or_join_session_result: RestoreOrJoinSessionResult
    logged_off: LoggedOff
    password_change_result: PasswordChangeResult
    user_messages: _containers.RepeatedCompositeFieldContainer[UserMessage]
    obtain_demo_credentials_results: _containers.RepeatedCompositeFieldContainer[ObtainDemoCredentialsResult]
    user_session_state_results: _containers.RepeatedCompositeFieldContainer[UserSessionStateResult]
    ping: Ping
    pong: Pong
    concurrent_connection_join_results: _containers.RepeatedCompositeFieldContainer[ConcurrentConnectionJoin]
    set_collapsing_level_results: _containers.RepeatedCompositeFieldContainer[SetCollapsingLevelResult]
    def __init__(self, logon_result: _Optional[_Union[LogonResult, _Mapping]] = ..., restore_or_join_session_result: _Optional[_Union[RestoreOrJoinSessionResult, _Mapping]] = ..., logged_off: _Optional[_Union[LoggedOff, _Mapping]] = ..., password_change_result: _Optional[_Union[PasswordChangeResult, _Mapping]] = ..., user_messages: _Optional[_Iterable[_Union[UserMessage, _Mapping]]] = ..., obtain_demo_credentials_results: _Optional[_Iterable[_Union[ObtainDemoCredentialsResult, _Mapping]]] = ..., user_session_state_results: _Optional[_Iterable[_Union[UserSessionStateResult, _Mapping]]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., concurrent_connection_join_results: _Optional[_Iterable[_Union[ConcurrentConnectionJoin, _Mapping]]] = ..., set_collapsing_level_results: _Optional[_Iterable[_Union[SetCollapsingLevelResult, _Mapping]]] = ...) -> None: ...

class Logon(_message.Message):
    __slots__ = ("user_name", "password", "one_time_password", "private_label", "client_app_id", "client_version", "drop_concurrent_session", "max_collapsing_level", "protocol_version_minor", "protocol_version_major", "session_settings", "market_data_bandwidth", "dialect_id", "access_token", "fingerprint", "operating_system", "browser", "device_model", "partner_token")
    class SessionSetting(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SESSION_SETTING_ALLOW_SESSION_RESTORE: _ClassVar[Logon.SessionSetting]
        SESSION_SETTING_ALLOW_SESSION_JOIN: _ClassVar[Logon.SessionSetting]
    SESSION_SETTING_ALLOW_SESSION_RESTORE: Logon.SessionSetting
    SESSION_SETTING_ALLOW_SESSION_JOIN: Logon.SessionSetting
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_LABEL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_APP_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DROP_CONCURRENT_SESSION_FIELD_NUMBER: _ClassVar[int]
    MAX_COLLAPSING_LEVEL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_MINOR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_MAJOR_FIELD_NUMBER: _ClassVar[int]
    SESSION_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    MARKET_DATA_BANDWIDTH_FIELD_NUMBER: _ClassVar[int]
    DIALECT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    OPERATING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MODEL_FIELD_NUMBER: _ClassVar[int]
    PARTNER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_name: str
    password: str
    one_time_password: str
    private_label: str
    client_app_id: str
    client_version: str
    drop_concurrent_session: bool
    max_collapsing_level: int
    protocol_version_minor: int
    protocol_version_major: int
    session_settings: _containers.RepeatedScalarFieldContainer[int]
    market_data_bandwidth: int
    dialect_id: str
    access_token: str
    fingerprint: str
    operating_system: str
    browser: str
    device_model: str
    partner_token: str
    def __init__(self, user_name: _Optional[str] = ..., password: _Optional[str] = ..., one_time_password: _Optional[str] = ..., private_label: _Optional[str] = ..., client_app_id: _Optional[str] = ..., client_version: _Optional[str] = ..., drop_concurrent_session: _Optional[bool] = ..., max_collapsing_level: _Optional[int] = ..., protocol_version_minor: _Optional[int] = ..., protocol_version_major: _Optional[int] = ..., session_settings: _Optional[_Iterable[int]] = ..., market_data_bandwidth: _Optional[int] = ..., dialect_id: _Optional[str] = ..., access_token: _Optional[str] = ..., fingerprint: _Optional[str] = ..., operating_system: _Optional[str] = ..., browser: _Optional[str] = ..., device_model: _Optional[str] = ..., partner_token: _Optional[str] = ...) -> None: ...

class LogonResult(_message.Message):
    __slots__ = ("result_code", "base_time", "session_token", "text_message", "redirect_url", "protocol_version_minor", "protocol_version_major", "user_id", "server_time", "inactivity_timeout")
    class ResultCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_CODE_SUCCESS: _ClassVar[LogonResult.ResultCode]
        RESULT_CODE_FAILURE: _ClassVar[LogonResult.ResultCode]
        RESULT_CODE_NO_ONETIME_PASSWORD: _ClassVar[LogonResult.ResultCode]
        RESULT_CODE_PASSWORD_EXPIRED: _ClassVar[LogonResult.ResultCode]
        RESULT_CODE_CONCURRENT_SESSION: _ClassVar[LogonResult.ResultCode]
        RESULT_CODE_REDIRECTED: _ClassVar[LogonResult.ResultCode]
        RESULT_CODE_ROUTINE_ERROR: _ClassVar[LogonResult.ResultCode]
        RESULT_CODE_ACCESS_TOKEN_EXPIRED: _ClassVar[LogonResult.ResultCode]
    RESULT_CODE_SUCCESS: LogonResult.ResultCode
    RESULT_CODE_FAILURE: LogonResult.ResultCode
    RESULT_CODE_NO_ONETIME_PASSWORD: LogonResult.ResultCode
    RESULT_CODE_PASSWORD_EXPIRED: LogonResult.ResultCode
    RESULT_CODE_CONCURRENT_SESSION: LogonResult.ResultCode
    RESULT_CODE_REDIRECTED: LogonResult.ResultCode
    RESULT_CODE_ROUTINE_ERROR: LogonResult.ResultCode
    RESULT_CODE_ACCESS_TOKEN_EXPIRED: LogonResult.ResultCode
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    BASE_TIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_MINOR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_MAJOR_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    INACTIVITY_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    result_code: int
    base_time: str
    session_token: str
    text_message: str
    redirect_url: str
    protocol_version_minor: int
    protocol_version_major: int
    user_id: int
    server_time: int
    inactivity_timeout: int
    def __init__(self, result_code: _Optional[int] = ..., base_time: _Optional[str] = ..., session_token: _Optional[str] = ..., text_message: _Optional[str] = ..., redirect_url: _Optional[str] = ..., protocol_version_minor: _Optional[int] = ..., protocol_version_major: _Optional[int] = ..., user_id: _Optional[int] = ..., server_time: _Optional[int] = ..., inactivity_timeout: _Optional[int] = ...) -> None: ...

class RestoreOrJoinSession(_message.Message):
    __slots__ = ("session_token", "private_label", "client_app_id", "max_collapsing_level", "protocol_version_minor", "protocol_version_major", "market_data_bandwidth")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_LABEL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_APP_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_COLLAPSING_LEVEL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_MINOR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_MAJOR_FIELD_NUMBER: _ClassVar[int]
    MARKET_DATA_BANDWIDTH_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    private_label: str
    client_app_id: str
    max_collapsing_level: int
    protocol_version_minor: int
    protocol_version_major: int
    market_data_bandwidth: int
    def __init__(self, session_token: _Optional[str] = ..., private_label: _Optional[str] = ..., client_app_id: _Optional[str] = ..., max_collapsing_level: _Optional[int] = ..., protocol_version_minor: _Optional[int] = ..., protocol_version_major: _Optional[int] = ..., market_data_bandwidth: _Optional[int] = ...) -> None: ...

class RestoreOrJoinSessionResult(_message.Message):
    __slots__ = ("result_code", "base_time", "text_message", "server_time", "dialect_id", "inactivity_timeout")
    class ResultCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_CODE_SUCCESS: _ClassVar[RestoreOrJoinSessionResult.ResultCode]
        RESULT_CODE_UNKNOWN_SESSION: _ClassVar[RestoreOrJoinSessionResult.ResultCode]
        RESULT_CODE_ACCESS_DENIED: _ClassVar[RestoreOrJoinSessionResult.ResultCode]
        RESULT_CODE_INVALID_PARAMS: _ClassVar[RestoreOrJoinSessionResult.ResultCode]
        RESULT_CODE_FAILURE: _ClassVar[RestoreOrJoinSessionResult.ResultCode]
    RESULT_CODE_SUCCESS: RestoreOrJoinSessionResult.ResultCode
    RESULT_CODE_UNKNOWN_SESSION: RestoreOrJoinSessionResult.ResultCode
    RESULT_CODE_ACCESS_DENIED: RestoreOrJoinSessionResult.ResultCode
    RESULT_CODE_INVALID_PARAMS: RestoreOrJoinSessionResult.ResultCode
    RESULT_CODE_FAILURE: RestoreOrJoinSessionResult.ResultCode
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    BASE_TIME_FIELD_NUMBER: _ClassVar[int]
    TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    DIALECT_ID_FIELD_NUMBER: _ClassVar[int]
    INACTIVITY_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    result_code: int
    base_time: str
    text_message: str
    server_time: int
    dialect_id: str
    inactivity_timeout: int
    def __init__(self, result_code: _Optional[int] = ..., base_time: _Optional[str] = ..., text_message: _Optional[str] = ..., server_time: _Optional[int] = ..., dialect_id: _Optional[str] = ..., inactivity_timeout: _Optional[int] = ...) -> None: ...

class ConcurrentConnectionJoin(_message.Message):
    __slots__ = ("is_same_app_type",)
    IS_SAME_APP_TYPE_FIELD_NUMBER: _ClassVar[int]
    is_same_app_type: bool
    def __init__(self, is_same_app_type: _Optional[bool] = ...) -> None: ...

class Logoff(_message.Message):
    __slots__ = ("text_message",)
    TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    text_message: str
    def __init__(self, text_message: _Optional[str] = ...) -> None: ...

class LoggedOff(_message.Message):
    __slots__ = ("logoff_reason", "text_message", "redirect_url")
    class LogoffReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        LOGOFF_REASON_BY_REQUEST: _ClassVar[LoggedOff.LogoffReason]
        LOGOFF_REASON_REDIRECTED: _ClassVar[LoggedOff.LogoffReason]
        LOGOFF_REASON_FORCED: _ClassVar[LoggedOff.LogoffReason]
        LOGOFF_REASON_REASSIGNED: _ClassVar[LoggedOff.LogoffReason]
    LOGOFF_REASON_BY_REQUEST: LoggedOff.LogoffReason
    LOGOFF_REASON_REDIRECTED: LoggedOff.LogoffReason
    LOGOFF_REASON_FORCED: LoggedOff.LogoffReason
    LOGOFF_REASON_REASSIGNED: LoggedOff.LogoffReason
    LOGOFF_REASON_FIELD_NUMBER: _ClassVar[int]
    TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URL_FIELD_NUMBER: _ClassVar[int]
    logoff_reason: int
    text_message: str
    redirect_url: str
    def __init__(self, logoff_reason: _Optional[int] = ..., text_message: _Optional[str] = ..., redirect_url: _Optional[str] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ("token", "ping_utc_time")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PING_UTC_TIME_FIELD_NUMBER: _ClassVar[int]
    token: str
    ping_utc_time: int
    def __init__(self, token: _Optional[str] = ..., ping_utc_time: _Optional[int] = ...) -> None: ...

class Pong(_message.Message):
    __slots__ = ("token", "ping_utc_time", "pong_utc_time")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PING_UTC_TIME_FIELD_NUMBER: _ClassVar[int]
    PONG_UTC_TIME_FIELD_NUMBER: _ClassVar[int]
    token: str
    ping_utc_time: int
    pong_utc_time: int
    def __init__(self, token: _Optional[str] = ..., ping_utc_time: _Optional[int] = ..., pong_utc_time: _Optional[int] = ...) -> None: ...

class UserMessage(_message.Message):
    __slots__ = ("message_type", "source", "subject", "text", "expiration_utc_time")
    class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MESSAGE_TYPE_CRITICAL_ERROR: _ClassVar[UserMessage.MessageType]
        MESSAGE_TYPE_WARNING: _ClassVar[UserMessage.MessageType]
        MESSAGE_TYPE_INFO: _ClassVar[UserMessage.MessageType]
        MESSAGE_TYPE_LOG: _ClassVar[UserMessage.MessageType]
    MESSAGE_TYPE_CRITICAL_ERROR: UserMessage.MessageType
    MESSAGE_TYPE_WARNING: UserMessage.MessageType
    MESSAGE_TYPE_INFO: UserMessage.MessageType
    MESSAGE_TYPE_LOG: UserMessage.MessageType
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_UTC_TIME_FIELD_NUMBER: _ClassVar[int]
    message_type: int
    source: str
    subject: str
    text: str
    expiration_utc_time: int
    def __init__(self, message_type: _Optional[int] = ..., source: _Optional[str] = ..., subject: _Optional[str] = ..., text: _Optional[str] = ..., expiration_utc_time: _Optional[int] = ...) -> None: ...

class PasswordChange(_message.Message):
    __slots__ = ("old_password", "new_password")
    OLD_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    old_password: str
    new_password: str
    def __init__(self, old_password: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class PasswordChangeResult(_message.Message):
    __slots__ = ("result_code", "text_message")
    class ResultCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_CODE_SUCCESS: _ClassVar[PasswordChangeResult.ResultCode]
        RESULT_CODE_FAILURE: _ClassVar[PasswordChangeResult.ResultCode]
        RESULT_CODE_ROUTINE_ERROR: _ClassVar[PasswordChangeResult.ResultCode]
    RESULT_CODE_SUCCESS: PasswordChangeResult.ResultCode
    RESULT_CODE_FAILURE: PasswordChangeResult.ResultCode
    RESULT_CODE_ROUTINE_ERROR: PasswordChangeResult.ResultCode
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    result_code: int
    text_message: str
    def __init__(self, result_code: _Optional[int] = ..., text_message: _Optional[str] = ...) -> None: ...

class ObtainDemoCredentials(_message.Message):
    __slots__ = ("client_app_id", "first_name", "second_name", "e_mail", "private_label")
    CLIENT_APP_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    SECOND_NAME_FIELD_NUMBER: _ClassVar[int]
    E_MAIL_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_LABEL_FIELD_NUMBER: _ClassVar[int]
    client_app_id: str
    first_name: str
    second_name: str
    e_mail: str
    private_label: str
    def __init__(self, client_app_id: _Optional[str] = ..., first_name: _Optional[str] = ..., second_name: _Optional[str] = ..., e_mail: _Optional[str] = ..., private_label: _Optional[str] = ...) -> None: ...

class ObtainDemoCredentialsResult(_message.Message):
    __slots__ = ("result_code", "user_name", "password", "text_message", "user_id", "expiration_utc")
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_UTC_FIELD_NUMBER: _ClassVar[int]
    result_code: int
    user_name: str
    password: str
    text_message: str
    user_id: int
    expiration_utc: str
    def __init__(self, result_code: _Optional[int] = ..., user_name: _Optional[str] = ..., password: _Optional[str] = ..., text_message: _Optional[str] = ..., user_id: _Optional[int] = ..., expiration_utc: _Optional[str] = ...) -> None: ...

class UserSessionStateRequest(_message.Message):
    __slots__ = ("session_token",)
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    def __init__(self, session_token: _Optional[str] = ...) -> None: ...

class UserSessionStateResult(_message.Message):
    __slots__ = ("session_token", "result_code", "user_id", "username")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    result_code: int
    user_id: int
    username: str
    def __init__(self, session_token: _Optional[str] = ..., result_code: _Optional[int] = ..., user_id: _Optional[int] = ..., username: _Optional[str] = ...) -> None: ...

class Text(_message.Message):
    __slots__ = ("key", "text", "format")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    key: str
    text: str
    format: str
    def __init__(self, key: _Optional[str] = ..., text: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class SetCollapsingLevelRequest(_message.Message):
    __slots__ = ("max_collapsing_level",)
    MAX_COLLAPSING_LEVEL_FIELD_NUMBER: _ClassVar[int]
    max_collapsing_level: int
    def __init__(self, max_collapsing_level: _Optional[int] = ...) -> None: ...

class SetCollapsingLevelResult(_message.Message):
    __slots__ = ("result_code", "text_message", "max_collapsing_level")
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_COLLAPSING_LEVEL_FIELD_NUMBER: _ClassVar[int]
    result_code: int
    text_message: Text
    max_collapsing_level: int
    def __init__(self, result_code: _Optional[int] = ..., text_message: _Optional[_Union[Text, _Mapping]] = ..., max_collapsing_level: _Optional[int] = ...) -> None: ...
