"""All models, imported here so Alembic and the app see the whole schema."""
from app.models.booking import (
    Appointment,
    Department,
    Doctor,
    Hospital,
    Patient,
    Schedule,
    Slot,
    SlotHold,
    WaitlistEntry,
)
from app.models.care import Checkin, CheckinEnrolment, DeviceHealth
from app.models.conversations import Conversation, Message, OutboundMessage
from app.models.help import EscalationStep, HelpAlert, HelpContact, HelpDevice, HelpPress
from app.models.knowledge import FaqArticle
from app.models.mobile import (
    HelpDelegate,
    IdempotencyRecord,
    RefreshToken,
    RequestPhoto,
    ResidentRequest,
    ResidentSession,
    SignInCode,
)
from app.models.reports import ConversationDay, RollupWatermark
from app.models.residents import ChannelIdentity, Community, PhoneLinkCode, Resident, Street
from app.models.subscriptions import SubscribeEvent, SubscribeGrant
from app.models.tickets import CannedReply, Staff, StaffSession, Ticket, TicketEvent
from app.models.workorders import (
    FollowUp,
    TicketDuplicate,
    WorkDepartment,
    WorkDepartmentMember,
    WorkOrder,
    WorkOrderDispatch,
    WorkOrderTimeLimit,
)

__all__ = [
    "Appointment", "CannedReply", "ChannelIdentity", "Community", "Conversation", "ConversationDay", "Department",
    "Doctor", "EscalationStep", "FaqArticle", "HelpAlert", "HelpContact", "HelpDelegate", "HelpDevice", "HelpPress",
    "Hospital", "IdempotencyRecord", "Message", "OutboundMessage", "Patient", "PhoneLinkCode", "RefreshToken",
    "RequestPhoto", "Resident", "ResidentRequest", "ResidentSession", "RollupWatermark", "Schedule", "SignInCode",
    "Slot", "SlotHold", "Staff", "StaffSession", "Street", "Ticket", "TicketEvent", "WaitlistEntry",
    "SubscribeEvent", "SubscribeGrant",
    "Checkin", "CheckinEnrolment", "DeviceHealth",
    "FollowUp", "TicketDuplicate", "WorkDepartment", "WorkDepartmentMember", "WorkOrder", "WorkOrderDispatch",
    "WorkOrderTimeLimit",
]
