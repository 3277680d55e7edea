// Plain words for tasks and their steps, as a photographer would say them (the Processes panel, the
// upload panel): "Thumbnails 18/20", "Checking the folder". Unknown types fall back to their label.

const TITLES = {
  upload_postprocess: 'Upload', change_commit: 'Commit', maintenance: 'Maintenance', regenerate: 'Regenerate',
  project_rename: 'Rename', project_delete: 'Delete', project_restore: 'Restore', photo_move: 'Move photos',
};

const STEPS = {
  upload_postprocess: 'Thumbnails',
  file_removal: 'Moving to the trash',
  manifest_check: 'Checking the project file',
  folder_check: 'Checking the folder',
  manifest_cleaning: 'Tidying the records',
  trash_maintenance: 'Emptying old trash',
  derivatives_check: 'Checking thumbnails and previews',
  regenerate: 'Making again',
  project_rename: 'Renaming the folder',
  project_delete: 'Moving the project to the trash',
  project_restore: 'Bringing the project back',
  photo_move: 'Moving photos',
  deleted_projects_purge: 'Emptying old deleted projects',
  folder_discovery: 'Looking for new folders',
};

const STATUS = { queued: 'waiting', canceled: 'canceled' };

let labels = {};  // task type → its definition's label

/** The task definitions (GET /api/tasks/definitions), to tell a task's own label from its type's. */
export function setDefinitions(definitions) {
  labels = Object.fromEntries(Object.entries(definitions).map(([type, d]) => [type, d.label]));
}

/** The label a task was given for what the user did (e.g. "Restore from trash"), or null. */
export function ownLabel(task) {
  return task.type in labels && task.label !== labels[task.type] ? task.label : null;
}

export function taskTitle(task) {
  return ownLabel(task) ?? TITLES[task.type] ?? task.label;
}

export function stepWords(type) {
  return STEPS[type] ?? type.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

export function statusWords(status) {
  return STATUS[status] ?? status;
}
