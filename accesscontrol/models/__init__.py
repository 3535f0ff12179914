from accesscontrol.models.audit import AppendOnlyError, AuditEvent, SystemAuditEntry
from accesscontrol.models.backups import Backup, BackupOutcome, BackupTrigger
from accesscontrol.models.cardholders import BlacklistEntry, Cardholder, Key, normalize_uid
from accesscontrol.models.changes import RuleChange
from accesscontrol.models.faces import FaceConsent, FaceTemplate
from accesscontrol.models.hotel import GuestArea, IdempotencyRecord, Room, Stay
from accesscontrol.models.jobs import Job, JobStatus
from accesscontrol.models.operators import ApiKey, LoginAttempt, Operator, OperatorGroup
from accesscontrol.models.partitions import Partition, PartitionedModel, SiteSettings, default_partition_id
from accesscontrol.models.permissions import AccessLevel, AccessLevelEntry, CardholderPermission
from accesscontrol.models.places import AccessPoint, Location, Zone
from accesscontrol.models.presence import Presence, PresenceChange
from accesscontrol.models.schedules import Calendar, CalendarDay, ModeChange, ModeSchedule, TimeInterval, TimePeriod
from accesscontrol.models.secondfactor import Authenticator, BackupCode, BackupCodes
from accesscontrol.models.sources import CardholderSource, SourcedCardholder, SyncRun, SyncStatus

__all__ = [
    "AccessLevel",
    "AccessLevelEntry",
    "AccessPoint",
    "ApiKey",
    "AppendOnlyError",
    "AuditEvent",
    "Authenticator",
    "Backup",
    "BackupCode",
    "BackupCodes",
    "BackupOutcome",
    "BackupTrigger",
    "BlacklistEntry",
    "Calendar",
    "CalendarDay",
    "Cardholder",
    "CardholderPermission",
    "CardholderSource",
    "FaceConsent",
    "FaceTemplate",
    "GuestArea",
    "IdempotencyRecord",
    "Job",
    "JobStatus",
    "Key",
    "Location",
    "LoginAttempt",
    "ModeChange",
    "ModeSchedule",
    "Operator",
    "OperatorGroup",
    "Partition",
    "PartitionedModel",
    "Presence",
    "PresenceChange",
    "Room",
    "RuleChange",
    "SiteSettings",
    "SourcedCardholder",
    "Stay",
    "SyncRun",
    "SyncStatus",
    "SystemAuditEntry",
    "TimeInterval",
    "TimePeriod",
    "Zone",
    "default_partition_id",
    "normalize_uid",
]
