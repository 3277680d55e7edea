// What a photo is, for the grid, the loupe, filters, sorting and culling: pure functions of the
// photo record (GET …/photos, SSE `item`).

const OTHER = /\.(png|tiff?|heic|heif|webp)$/i;

/**
 * The photo's variants: JPG, RAW, and the other one (HEIC, TIFF, PNG…) as one more, cullable when the
 * record carries `keep_other` (CONTRACT §7.3), shown as a plain label otherwise.
 * → [{kind, label, keep, cullable}]
 */
export function variants(photo) {
  const out = [];
  if (photo.jpg_available) out.push({ kind: 'jpg', label: 'JPG', keep: photo.keep_jpg, cullable: true });
  if (photo.raw_available) out.push({ kind: 'raw', label: 'RAW', keep: photo.keep_raw, cullable: true });
  const other = photo.files.find((name) => OTHER.test(name));
  if (other || photo.other_available) {
    const cullable = 'keep_other' in photo;
    out.push({ kind: 'other', label: other ? other.split('.').pop().toUpperCase() : 'Other',
      keep: cullable ? photo.keep_other : true, cullable });
  }
  return out;
}

/** kept (nothing will go), dropped (everything will go), partial (some variants will go). */
export function state(photo) {
  const cullable = variants(photo).filter((v) => v.cullable);
  const dropped = cullable.filter((v) => !v.keep).length;
  if (!dropped) return 'kept';
  return dropped === cullable.length ? 'dropped' : 'partial';
}

export function orientation(photo) {
  if (!photo.width || !photo.height) return null;
  if (photo.width === photo.height) return 'square';
  return photo.width > photo.height ? 'landscape' : 'portrait';
}

export function fileType(photo) {
  if (photo.jpg_available && photo.raw_available) return 'jpg+raw';
  if (photo.jpg_available) return 'jpg';
  if (photo.raw_available && !photo.other_available) return 'raw';
  return 'other';
}

/** The day a photo was taken ("2008-05-30"), or '' when the camera did not say. */
export function day(photo) {
  return photo.taken_at ? photo.taken_at.slice(0, 10) : '';
}

/** filter = {status: all|kept|dropped|pending, type: all|jpg+raw|jpg|raw|other, orientation: all|…, day: all|<day>|''} */
export function matches(photo, filter) {
  const s = state(photo);
  if (filter.status === 'kept' && s !== 'kept') return false;
  if (filter.status === 'dropped' && s !== 'dropped') return false;
  if (filter.status === 'pending' && s === 'kept') return false;
  if (filter.type !== 'all' && fileType(photo) !== filter.type) return false;
  if (filter.orientation !== 'all' && orientation(photo) !== filter.orientation) return false;
  if (filter.day !== 'all' && day(photo) !== filter.day) return false;
  return true;
}

const compare = (x, y) => (x < y ? -1 : x > y ? 1 : 0);

/** Sort orders: by the time taken (as the API lists them; undated last), by name, newest arrivals first. */
export const ORDERS = {
  time: (a, b) => compare(a.taken_at == null, b.taken_at == null) || compare(a.taken_at ?? '', b.taken_at ?? '')
    || compare(a.filename, b.filename),
  name: (a, b) => compare(a.filename, b.filename),
  recent: (a, b) => compare(b.created_at, a.created_at) || compare(a.filename, b.filename),
};

/** Culling actions (keys and buttons): which variants each keeps. `r` keeps JPG + RAW as the original app did. */
export const ACTIONS = {
  keep: { label: 'Keep all', keys: ['k', 'r'], flags: () => true },
  jpg: { label: 'JPG only', keys: ['j'], flags: (kind) => kind === 'jpg' },
  raw: { label: 'RAW only', keys: ['R'], flags: (kind) => kind === 'raw' },
  drop: { label: 'Drop', keys: ['x', 'Delete', 'Backspace'], flags: () => false },
};

/** The keep flags an action sets on a photo, or null when it means nothing for it (JPG only without a JPG). */
export function flagsFor(photo, action) {
  const cullable = variants(photo).filter((v) => v.cullable);
  const flags = Object.fromEntries(cullable.map((v) => [`keep_${v.kind}`, ACTIONS[action].flags(v.kind)]));
  if (action !== 'drop' && !Object.values(flags).some(Boolean)) return null;
  return flags;
}

/** The flags a toggle of one variant sets. */
export function toggled(photo, kind) {
  return { [`keep_${kind}`]: !photo[`keep_${kind}`] };
}

/** "drop all", "keep JPG, drop RAW": what the photo's flags now say. */
export function describe(photo) {
  const cullable = variants(photo).filter((v) => v.cullable);
  const s = state(photo);
  if (s === 'kept') return 'keep all';
  if (s === 'dropped') return cullable.length > 1 ? 'drop all' : 'drop';
  const kept = cullable.filter((v) => v.keep).map((v) => v.label).join(' + ');
  const dropped = cullable.filter((v) => !v.keep).map((v) => v.label).join(' + ');
  return `keep ${kept}, drop ${dropped}`;
}
