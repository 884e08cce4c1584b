// The app's version: a test changes it to make a new release whose assets get new hashes.
export const version = 'v1';
