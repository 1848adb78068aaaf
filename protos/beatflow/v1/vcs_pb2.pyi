from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Visibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISIBILITY_UNSPECIFIED: _ClassVar[Visibility]
    VISIBILITY_PRIVATE: _ClassVar[Visibility]
    VISIBILITY_PUBLIC: _ClassVar[Visibility]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_READ: _ClassVar[Role]
    ROLE_WRITE: _ClassVar[Role]
    ROLE_OWNER: _ClassVar[Role]

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_ADDED: _ClassVar[ChangeKind]
    CHANGE_KIND_REMOVED: _ClassVar[ChangeKind]
    CHANGE_KIND_CHANGED: _ClassVar[ChangeKind]
    CHANGE_KIND_UNCHANGED: _ClassVar[ChangeKind]

class MergeStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MERGE_STRATEGY_UNSPECIFIED: _ClassVar[MergeStrategy]
    MERGE_STRATEGY_OURS: _ClassVar[MergeStrategy]
    MERGE_STRATEGY_THEIRS: _ClassVar[MergeStrategy]
VISIBILITY_UNSPECIFIED: Visibility
VISIBILITY_PRIVATE: Visibility
VISIBILITY_PUBLIC: Visibility
ROLE_UNSPECIFIED: Role
ROLE_READ: Role
ROLE_WRITE: Role
ROLE_OWNER: Role
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_ADDED: ChangeKind
CHANGE_KIND_REMOVED: ChangeKind
CHANGE_KIND_CHANGED: ChangeKind
CHANGE_KIND_UNCHANGED: ChangeKind
MERGE_STRATEGY_UNSPECIFIED: MergeStrategy
MERGE_STRATEGY_OURS: MergeStrategy
MERGE_STRATEGY_THEIRS: MergeStrategy

class User(_message.Message):
    __slots__ = ("id", "username", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    username: str
    created_at: float
    def __init__(self, id: _Optional[str] = ..., username: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class CreateUserRequest(_message.Message):
    __slots__ = ("username", "password_hash")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    username: str
    password_hash: str
    def __init__(self, username: _Optional[str] = ..., password_hash: _Optional[str] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id", "username")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class UserCredentials(_message.Message):
    __slots__ = ("user", "password_hash")
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    user: User
    password_hash: str
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., password_hash: _Optional[str] = ...) -> None: ...

class Repository(_message.Message):
    __slots__ = ("id", "owner_id", "owner_username", "name", "description", "visibility", "default_branch", "forked_from_id", "created_at", "role")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_BRANCH_FIELD_NUMBER: _ClassVar[int]
    FORKED_FROM_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner_id: str
    owner_username: str
    name: str
    description: str
    visibility: Visibility
    default_branch: str
    forked_from_id: str
    created_at: float
    role: Role
    def __init__(self, id: _Optional[str] = ..., owner_id: _Optional[str] = ..., owner_username: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., default_branch: _Optional[str] = ..., forked_from_id: _Optional[str] = ..., created_at: _Optional[float] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class CreateRepositoryRequest(_message.Message):
    __slots__ = ("actor", "name", "description", "visibility", "default_branch")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_BRANCH_FIELD_NUMBER: _ClassVar[int]
    actor: str
    name: str
    description: str
    visibility: Visibility
    default_branch: str
    def __init__(self, actor: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., default_branch: _Optional[str] = ...) -> None: ...

class GetRepositoryRequest(_message.Message):
    __slots__ = ("actor", "repo_id")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ...) -> None: ...

class ListRepositoriesRequest(_message.Message):
    __slots__ = ("actor", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRepositoriesResponse(_message.Message):
    __slots__ = ("repositories", "next_page_token")
    REPOSITORIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    repositories: _containers.RepeatedCompositeFieldContainer[Repository]
    next_page_token: str
    def __init__(self, repositories: _Optional[_Iterable[_Union[Repository, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateRepositoryRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "name", "description", "visibility", "default_branch")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_BRANCH_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    name: str
    description: str
    visibility: Visibility
    default_branch: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ..., default_branch: _Optional[str] = ...) -> None: ...

class DeleteRepositoryRequest(_message.Message):
    __slots__ = ("actor", "repo_id")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ...) -> None: ...

class Collaborator(_message.Message):
    __slots__ = ("user_id", "username", "role")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    role: Role
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class SetCollaboratorRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "username", "role")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    username: str
    role: Role
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class ListCollaboratorsRequest(_message.Message):
    __slots__ = ("actor", "repo_id")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ...) -> None: ...

class ListCollaboratorsResponse(_message.Message):
    __slots__ = ("collaborators",)
    COLLABORATORS_FIELD_NUMBER: _ClassVar[int]
    collaborators: _containers.RepeatedCompositeFieldContainer[Collaborator]
    def __init__(self, collaborators: _Optional[_Iterable[_Union[Collaborator, _Mapping]]] = ...) -> None: ...

class Stem(_message.Message):
    __slots__ = ("name", "blob_key", "content_type", "size_bytes", "duration_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BLOB_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    blob_key: str
    content_type: str
    size_bytes: int
    duration_s: float
    def __init__(self, name: _Optional[str] = ..., blob_key: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., duration_s: _Optional[float] = ...) -> None: ...

class CommitMetadata(_message.Message):
    __slots__ = ("bpm", "key", "duration_s", "sample_rate", "generation_json")
    BPM_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    GENERATION_JSON_FIELD_NUMBER: _ClassVar[int]
    bpm: float
    key: str
    duration_s: float
    sample_rate: int
    generation_json: str
    def __init__(self, bpm: _Optional[float] = ..., key: _Optional[str] = ..., duration_s: _Optional[float] = ..., sample_rate: _Optional[int] = ..., generation_json: _Optional[str] = ...) -> None: ...

class Commit(_message.Message):
    __slots__ = ("id", "repo_id", "parent_ids", "author_id", "author_username", "message", "timestamp", "stems", "mixdown_blob", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_IDS_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_USERNAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STEMS_FIELD_NUMBER: _ClassVar[int]
    MIXDOWN_BLOB_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    repo_id: str
    parent_ids: _containers.RepeatedScalarFieldContainer[str]
    author_id: str
    author_username: str
    message: str
    timestamp: float
    stems: _containers.RepeatedCompositeFieldContainer[Stem]
    mixdown_blob: str
    metadata: CommitMetadata
    def __init__(self, id: _Optional[str] = ..., repo_id: _Optional[str] = ..., parent_ids: _Optional[_Iterable[str]] = ..., author_id: _Optional[str] = ..., author_username: _Optional[str] = ..., message: _Optional[str] = ..., timestamp: _Optional[float] = ..., stems: _Optional[_Iterable[_Union[Stem, _Mapping]]] = ..., mixdown_blob: _Optional[str] = ..., metadata: _Optional[_Union[CommitMetadata, _Mapping]] = ...) -> None: ...

class CreateCommitRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "branch", "expected_head", "message", "stems", "mixdown_blob", "metadata", "extra_parent_ids", "inherit_stems", "remove_stems", "resolve_head", "orphan", "inherit_metadata", "owned_blobs", "require_readable")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_HEAD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STEMS_FIELD_NUMBER: _ClassVar[int]
    MIXDOWN_BLOB_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXTRA_PARENT_IDS_FIELD_NUMBER: _ClassVar[int]
    INHERIT_STEMS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_STEMS_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_HEAD_FIELD_NUMBER: _ClassVar[int]
    ORPHAN_FIELD_NUMBER: _ClassVar[int]
    INHERIT_METADATA_FIELD_NUMBER: _ClassVar[int]
    OWNED_BLOBS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_READABLE_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    branch: str
    expected_head: str
    message: str
    stems: _containers.RepeatedCompositeFieldContainer[Stem]
    mixdown_blob: str
    metadata: CommitMetadata
    extra_parent_ids: _containers.RepeatedScalarFieldContainer[str]
    inherit_stems: bool
    remove_stems: _containers.RepeatedScalarFieldContainer[str]
    resolve_head: bool
    orphan: bool
    inherit_metadata: bool
    owned_blobs: _containers.RepeatedScalarFieldContainer[str]
    require_readable: bool
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., branch: _Optional[str] = ..., expected_head: _Optional[str] = ..., message: _Optional[str] = ..., stems: _Optional[_Iterable[_Union[Stem, _Mapping]]] = ..., mixdown_blob: _Optional[str] = ..., metadata: _Optional[_Union[CommitMetadata, _Mapping]] = ..., extra_parent_ids: _Optional[_Iterable[str]] = ..., inherit_stems: _Optional[bool] = ..., remove_stems: _Optional[_Iterable[str]] = ..., resolve_head: _Optional[bool] = ..., orphan: _Optional[bool] = ..., inherit_metadata: _Optional[bool] = ..., owned_blobs: _Optional[_Iterable[str]] = ..., require_readable: _Optional[bool] = ...) -> None: ...

class GetCommitRequest(_message.Message):
    __slots__ = ("actor", "commit_id", "repo_id")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    actor: str
    commit_id: str
    repo_id: str
    def __init__(self, actor: _Optional[str] = ..., commit_id: _Optional[str] = ..., repo_id: _Optional[str] = ...) -> None: ...

class Ref(_message.Message):
    __slots__ = ("name", "commit_id", "is_tag", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    IS_TAG_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    commit_id: str
    is_tag: bool
    message: str
    def __init__(self, name: _Optional[str] = ..., commit_id: _Optional[str] = ..., is_tag: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class CreateBranchRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "name", "from_ref")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FROM_REF_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    name: str
    from_ref: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., name: _Optional[str] = ..., from_ref: _Optional[str] = ...) -> None: ...

class DeleteBranchRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "name")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    name: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RenameBranchRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "name", "new_name")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    name: str
    new_name: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., name: _Optional[str] = ..., new_name: _Optional[str] = ...) -> None: ...

class ListRefsRequest(_message.Message):
    __slots__ = ("actor", "repo_id")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ...) -> None: ...

class ListRefsResponse(_message.Message):
    __slots__ = ("refs",)
    REFS_FIELD_NUMBER: _ClassVar[int]
    refs: _containers.RepeatedCompositeFieldContainer[Ref]
    def __init__(self, refs: _Optional[_Iterable[_Union[Ref, _Mapping]]] = ...) -> None: ...

class CreateTagRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "name", "target", "message")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    name: str
    target: str
    message: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., name: _Optional[str] = ..., target: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class DeleteTagRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "name")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    name: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "ref", "first_parent", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    FIRST_PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    ref: str
    first_parent: bool
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., ref: _Optional[str] = ..., first_parent: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class LogResponse(_message.Message):
    __slots__ = ("commits", "next_page_token")
    COMMITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    commits: _containers.RepeatedCompositeFieldContainer[Commit]
    next_page_token: str
    def __init__(self, commits: _Optional[_Iterable[_Union[Commit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CommitGraphRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "limit")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    limit: int
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class GraphEdge(_message.Message):
    __slots__ = ("child", "parent")
    CHILD_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    child: str
    parent: str
    def __init__(self, child: _Optional[str] = ..., parent: _Optional[str] = ...) -> None: ...

class CommitGraph(_message.Message):
    __slots__ = ("nodes", "edges", "refs")
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    REFS_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Commit]
    edges: _containers.RepeatedCompositeFieldContainer[GraphEdge]
    refs: _containers.RepeatedCompositeFieldContainer[Ref]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Commit, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[GraphEdge, _Mapping]]] = ..., refs: _Optional[_Iterable[_Union[Ref, _Mapping]]] = ...) -> None: ...

class IsAncestorRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "ancestor", "descendant")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    ANCESTOR_FIELD_NUMBER: _ClassVar[int]
    DESCENDANT_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    ancestor: str
    descendant: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., ancestor: _Optional[str] = ..., descendant: _Optional[str] = ...) -> None: ...

class IsAncestorResponse(_message.Message):
    __slots__ = ("is_ancestor",)
    IS_ANCESTOR_FIELD_NUMBER: _ClassVar[int]
    is_ancestor: bool
    def __init__(self, is_ancestor: _Optional[bool] = ...) -> None: ...

class ForkRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "name", "visibility")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    name: str
    visibility: Visibility
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[_Union[Visibility, str]] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "base", "head")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    base: str
    head: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., base: _Optional[str] = ..., head: _Optional[str] = ...) -> None: ...

class StemChange(_message.Message):
    __slots__ = ("name", "kind", "base_blob", "head_blob")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_BLOB_FIELD_NUMBER: _ClassVar[int]
    HEAD_BLOB_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ChangeKind
    base_blob: str
    head_blob: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., base_blob: _Optional[str] = ..., head_blob: _Optional[str] = ...) -> None: ...

class MetadataChange(_message.Message):
    __slots__ = ("field", "base_value", "head_value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    BASE_VALUE_FIELD_NUMBER: _ClassVar[int]
    HEAD_VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    base_value: str
    head_value: str
    def __init__(self, field: _Optional[str] = ..., base_value: _Optional[str] = ..., head_value: _Optional[str] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("stems", "metadata")
    STEMS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    stems: _containers.RepeatedCompositeFieldContainer[StemChange]
    metadata: _containers.RepeatedCompositeFieldContainer[MetadataChange]
    def __init__(self, stems: _Optional[_Iterable[_Union[StemChange, _Mapping]]] = ..., metadata: _Optional[_Iterable[_Union[MetadataChange, _Mapping]]] = ...) -> None: ...

class MergeBaseRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "a", "b")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    a: str
    b: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...

class MergeBaseResponse(_message.Message):
    __slots__ = ("merge_bases",)
    MERGE_BASES_FIELD_NUMBER: _ClassVar[int]
    merge_bases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, merge_bases: _Optional[_Iterable[str]] = ...) -> None: ...

class MergeRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "into_branch", "from_ref", "expected_head", "message", "default_strategy", "stem_strategies", "no_fast_forward", "dry_run")
    class StemStrategiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MergeStrategy
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MergeStrategy, str]] = ...) -> None: ...
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    INTO_BRANCH_FIELD_NUMBER: _ClassVar[int]
    FROM_REF_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_HEAD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STEM_STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    NO_FAST_FORWARD_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    into_branch: str
    from_ref: str
    expected_head: str
    message: str
    default_strategy: MergeStrategy
    stem_strategies: _containers.ScalarMap[str, MergeStrategy]
    no_fast_forward: bool
    dry_run: bool
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., into_branch: _Optional[str] = ..., from_ref: _Optional[str] = ..., expected_head: _Optional[str] = ..., message: _Optional[str] = ..., default_strategy: _Optional[_Union[MergeStrategy, str]] = ..., stem_strategies: _Optional[_Mapping[str, MergeStrategy]] = ..., no_fast_forward: _Optional[bool] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class StemConflict(_message.Message):
    __slots__ = ("name", "base_blob", "ours_blob", "theirs_blob")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_BLOB_FIELD_NUMBER: _ClassVar[int]
    OURS_BLOB_FIELD_NUMBER: _ClassVar[int]
    THEIRS_BLOB_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_blob: str
    ours_blob: str
    theirs_blob: str
    def __init__(self, name: _Optional[str] = ..., base_blob: _Optional[str] = ..., ours_blob: _Optional[str] = ..., theirs_blob: _Optional[str] = ...) -> None: ...

class MergeResponse(_message.Message):
    __slots__ = ("merged", "fast_forward", "up_to_date", "commit", "conflicts", "merge_bases", "dry_run")
    MERGED_FIELD_NUMBER: _ClassVar[int]
    FAST_FORWARD_FIELD_NUMBER: _ClassVar[int]
    UP_TO_DATE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    MERGE_BASES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    merged: bool
    fast_forward: bool
    up_to_date: bool
    commit: Commit
    conflicts: _containers.RepeatedCompositeFieldContainer[StemConflict]
    merge_bases: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    def __init__(self, merged: _Optional[bool] = ..., fast_forward: _Optional[bool] = ..., up_to_date: _Optional[bool] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ..., conflicts: _Optional[_Iterable[_Union[StemConflict, _Mapping]]] = ..., merge_bases: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class RevertRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "branch", "commit_id", "expected_head", "message")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_HEAD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    branch: str
    commit_id: str
    expected_head: str
    message: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., branch: _Optional[str] = ..., commit_id: _Optional[str] = ..., expected_head: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class BlameRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "ref")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    ref: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., ref: _Optional[str] = ...) -> None: ...

class BlameEntry(_message.Message):
    __slots__ = ("stem", "blob_key", "commit")
    STEM_FIELD_NUMBER: _ClassVar[int]
    BLOB_KEY_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    stem: str
    blob_key: str
    commit: Commit
    def __init__(self, stem: _Optional[str] = ..., blob_key: _Optional[str] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ...) -> None: ...

class BlameResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[BlameEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[BlameEntry, _Mapping]]] = ...) -> None: ...

class CheckoutRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "ref")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    ref: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., ref: _Optional[str] = ...) -> None: ...

class CanReadBlobRequest(_message.Message):
    __slots__ = ("actor", "blob_key")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    BLOB_KEY_FIELD_NUMBER: _ClassVar[int]
    actor: str
    blob_key: str
    def __init__(self, actor: _Optional[str] = ..., blob_key: _Optional[str] = ...) -> None: ...

class CanReadBlobResponse(_message.Message):
    __slots__ = ("allowed",)
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    def __init__(self, allowed: _Optional[bool] = ...) -> None: ...

class GarbageCollectRequest(_message.Message):
    __slots__ = ("candidate_blobs", "grace_period_s", "dry_run", "candidates")
    CANDIDATE_BLOBS_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    candidate_blobs: _containers.RepeatedScalarFieldContainer[str]
    grace_period_s: float
    dry_run: bool
    candidates: _containers.RepeatedCompositeFieldContainer[BlobCandidate]
    def __init__(self, candidate_blobs: _Optional[_Iterable[str]] = ..., grace_period_s: _Optional[float] = ..., dry_run: _Optional[bool] = ..., candidates: _Optional[_Iterable[_Union[BlobCandidate, _Mapping]]] = ...) -> None: ...

class BlobCandidate(_message.Message):
    __slots__ = ("key", "created_at")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    key: str
    created_at: float
    def __init__(self, key: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class GarbageCollectResponse(_message.Message):
    __slots__ = ("deletable_blobs", "referenced", "deleted", "kept_young")
    DELETABLE_BLOBS_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    KEPT_YOUNG_FIELD_NUMBER: _ClassVar[int]
    deletable_blobs: _containers.RepeatedScalarFieldContainer[str]
    referenced: int
    deleted: bool
    kept_young: int
    def __init__(self, deletable_blobs: _Optional[_Iterable[str]] = ..., referenced: _Optional[int] = ..., deleted: _Optional[bool] = ..., kept_young: _Optional[int] = ...) -> None: ...

class RegisterBlobRequest(_message.Message):
    __slots__ = ("actor", "blob_key", "content_type", "size_bytes")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    BLOB_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    actor: str
    blob_key: str
    content_type: str
    size_bytes: int
    def __init__(self, actor: _Optional[str] = ..., blob_key: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class RegisterBlobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Comment(_message.Message):
    __slots__ = ("id", "repo_id", "commit_id", "merge_request_id", "parent_id", "author_id", "author_username", "body", "stem", "start_s", "end_s", "resolved", "resolved_by", "deleted", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_USERNAME_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    STEM_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    repo_id: str
    commit_id: str
    merge_request_id: str
    parent_id: str
    author_id: str
    author_username: str
    body: str
    stem: str
    start_s: float
    end_s: float
    resolved: bool
    resolved_by: str
    deleted: bool
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., repo_id: _Optional[str] = ..., commit_id: _Optional[str] = ..., merge_request_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., author_id: _Optional[str] = ..., author_username: _Optional[str] = ..., body: _Optional[str] = ..., stem: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., resolved: _Optional[bool] = ..., resolved_by: _Optional[str] = ..., deleted: _Optional[bool] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class AddCommentRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "commit_id", "merge_request_id", "parent_id", "body", "stem", "start_s", "end_s")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    STEM_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    commit_id: str
    merge_request_id: str
    parent_id: str
    body: str
    stem: str
    start_s: float
    end_s: float
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., commit_id: _Optional[str] = ..., merge_request_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., body: _Optional[str] = ..., stem: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class ListCommentsRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "commit_id", "merge_request_id", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    commit_id: str
    merge_request_id: str
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., commit_id: _Optional[str] = ..., merge_request_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCommentsResponse(_message.Message):
    __slots__ = ("comments", "next_page_token")
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    comments: _containers.RepeatedCompositeFieldContainer[Comment]
    next_page_token: str
    def __init__(self, comments: _Optional[_Iterable[_Union[Comment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EditCommentRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "comment_id", "body")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    comment_id: str
    body: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., comment_id: _Optional[str] = ..., body: _Optional[str] = ...) -> None: ...

class DeleteCommentRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "comment_id")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_ID_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    comment_id: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., comment_id: _Optional[str] = ...) -> None: ...

class ResolveCommentRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "comment_id", "resolved")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    comment_id: str
    resolved: bool
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., comment_id: _Optional[str] = ..., resolved: _Optional[bool] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("reviewer_id", "reviewer_username", "verdict", "body", "source_head", "created_at", "current")
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_USERNAME_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HEAD_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    reviewer_id: str
    reviewer_username: str
    verdict: str
    body: str
    source_head: str
    created_at: float
    current: bool
    def __init__(self, reviewer_id: _Optional[str] = ..., reviewer_username: _Optional[str] = ..., verdict: _Optional[str] = ..., body: _Optional[str] = ..., source_head: _Optional[str] = ..., created_at: _Optional[float] = ..., current: _Optional[bool] = ...) -> None: ...

class MergeRequestInfo(_message.Message):
    __slots__ = ("id", "number", "target_repo_id", "target_branch", "source_repo_id", "source_branch", "author_id", "author_username", "title", "description", "state", "source_head", "target_head", "conflicts", "merge_commit_id", "merged_by", "version", "created_at", "updated_at", "reviews")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TARGET_REPO_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_BRANCH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REPO_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_BRANCH_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_USERNAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HEAD_FIELD_NUMBER: _ClassVar[int]
    TARGET_HEAD_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    MERGE_COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    MERGED_BY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    target_repo_id: str
    target_branch: str
    source_repo_id: str
    source_branch: str
    author_id: str
    author_username: str
    title: str
    description: str
    state: str
    source_head: str
    target_head: str
    conflicts: _containers.RepeatedScalarFieldContainer[str]
    merge_commit_id: str
    merged_by: str
    version: int
    created_at: float
    updated_at: float
    reviews: _containers.RepeatedCompositeFieldContainer[Review]
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ..., target_repo_id: _Optional[str] = ..., target_branch: _Optional[str] = ..., source_repo_id: _Optional[str] = ..., source_branch: _Optional[str] = ..., author_id: _Optional[str] = ..., author_username: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., state: _Optional[str] = ..., source_head: _Optional[str] = ..., target_head: _Optional[str] = ..., conflicts: _Optional[_Iterable[str]] = ..., merge_commit_id: _Optional[str] = ..., merged_by: _Optional[str] = ..., version: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., reviews: _Optional[_Iterable[_Union[Review, _Mapping]]] = ...) -> None: ...

class MergeRequestEvaluation(_message.Message):
    __slots__ = ("source_head", "target_head", "merge_bases", "up_to_date", "conflicts", "changes")
    SOURCE_HEAD_FIELD_NUMBER: _ClassVar[int]
    TARGET_HEAD_FIELD_NUMBER: _ClassVar[int]
    MERGE_BASES_FIELD_NUMBER: _ClassVar[int]
    UP_TO_DATE_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    source_head: str
    target_head: str
    merge_bases: _containers.RepeatedScalarFieldContainer[str]
    up_to_date: bool
    conflicts: _containers.RepeatedCompositeFieldContainer[StemConflict]
    changes: _containers.RepeatedCompositeFieldContainer[StemChange]
    def __init__(self, source_head: _Optional[str] = ..., target_head: _Optional[str] = ..., merge_bases: _Optional[_Iterable[str]] = ..., up_to_date: _Optional[bool] = ..., conflicts: _Optional[_Iterable[_Union[StemConflict, _Mapping]]] = ..., changes: _Optional[_Iterable[_Union[StemChange, _Mapping]]] = ...) -> None: ...

class MergeRequestView(_message.Message):
    __slots__ = ("request", "evaluation")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    request: MergeRequestInfo
    evaluation: MergeRequestEvaluation
    def __init__(self, request: _Optional[_Union[MergeRequestInfo, _Mapping]] = ..., evaluation: _Optional[_Union[MergeRequestEvaluation, _Mapping]] = ...) -> None: ...

class OpenMergeRequestRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "target_branch", "source_repo_id", "source_branch", "title", "description")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_BRANCH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REPO_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_BRANCH_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    target_branch: str
    source_repo_id: str
    source_branch: str
    title: str
    description: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., target_branch: _Optional[str] = ..., source_repo_id: _Optional[str] = ..., source_branch: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class GetMergeRequestRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "merge_request")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    merge_request: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., merge_request: _Optional[str] = ...) -> None: ...

class ListMergeRequestsRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "state", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    state: str
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., state: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMergeRequestsResponse(_message.Message):
    __slots__ = ("merge_requests", "next_page_token")
    MERGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    merge_requests: _containers.RepeatedCompositeFieldContainer[MergeRequestInfo]
    next_page_token: str
    def __init__(self, merge_requests: _Optional[_Iterable[_Union[MergeRequestInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReviewMergeRequestRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "merge_request", "verdict", "body")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    merge_request: str
    verdict: str
    body: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., merge_request: _Optional[str] = ..., verdict: _Optional[str] = ..., body: _Optional[str] = ...) -> None: ...

class SetMergeRequestStateRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "merge_request", "state")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    merge_request: str
    state: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., merge_request: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class AcceptMergeRequestRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "merge_request", "default_strategy", "stem_strategies", "message")
    class StemStrategiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MergeStrategy
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MergeStrategy, str]] = ...) -> None: ...
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STEM_STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    merge_request: str
    default_strategy: MergeStrategy
    stem_strategies: _containers.ScalarMap[str, MergeStrategy]
    message: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., merge_request: _Optional[str] = ..., default_strategy: _Optional[_Union[MergeStrategy, str]] = ..., stem_strategies: _Optional[_Mapping[str, MergeStrategy]] = ..., message: _Optional[str] = ...) -> None: ...

class AcceptMergeRequestResponse(_message.Message):
    __slots__ = ("request", "merged", "stale", "merge", "evaluation")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    MERGE_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    request: MergeRequestInfo
    merged: bool
    stale: bool
    merge: MergeResponse
    evaluation: MergeRequestEvaluation
    def __init__(self, request: _Optional[_Union[MergeRequestInfo, _Mapping]] = ..., merged: _Optional[bool] = ..., stale: _Optional[bool] = ..., merge: _Optional[_Union[MergeResponse, _Mapping]] = ..., evaluation: _Optional[_Union[MergeRequestEvaluation, _Mapping]] = ...) -> None: ...

class ActivityEvent(_message.Message):
    __slots__ = ("seq", "repo_id", "repo_owner", "repo_name", "actor_id", "actor_username", "kind", "ref_name", "commit_id", "old_commit_id", "comment_id", "merge_request_id", "summary", "created_at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    REPO_OWNER_FIELD_NUMBER: _ClassVar[int]
    REPO_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_USERNAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REF_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_COMMIT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    repo_id: str
    repo_owner: str
    repo_name: str
    actor_id: str
    actor_username: str
    kind: str
    ref_name: str
    commit_id: str
    old_commit_id: str
    comment_id: str
    merge_request_id: str
    summary: str
    created_at: float
    def __init__(self, seq: _Optional[int] = ..., repo_id: _Optional[str] = ..., repo_owner: _Optional[str] = ..., repo_name: _Optional[str] = ..., actor_id: _Optional[str] = ..., actor_username: _Optional[str] = ..., kind: _Optional[str] = ..., ref_name: _Optional[str] = ..., commit_id: _Optional[str] = ..., old_commit_id: _Optional[str] = ..., comment_id: _Optional[str] = ..., merge_request_id: _Optional[str] = ..., summary: _Optional[str] = ..., created_at: _Optional[float] = ...) -> None: ...

class ActivityRequest(_message.Message):
    __slots__ = ("actor", "repo_id", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    repo_id: str
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., repo_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class WhatsNewRequest(_message.Message):
    __slots__ = ("actor", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ActivityResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ActivityEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[ActivityEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
