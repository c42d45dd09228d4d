"""Notes and tasks: what a trainer wrote about a client, and what they must do for them.

Only the columns TrainU reads (whose client, when, done or not) are typed; the rest stays in
the change's payload.
"""

from __future__ import annotations

from trainu_dagster.ghl.payloads.reader import FieldSpec, flag_field, text_field, time_field

NOTE_FIELDS: FieldSpec = {
    "contact_id": ("contactId", text_field, None),
    "date_added": ("dateAdded", time_field, None),
}
TASK_FIELDS: FieldSpec = {
    "contact_id": ("contactId", text_field, None),
    "assigned_to": ("assignedTo", text_field, None),
    "title": ("title", text_field, None),
    "due_date": ("dueDate", time_field, None),
    "completed": ("completed", flag_field, False),
}
